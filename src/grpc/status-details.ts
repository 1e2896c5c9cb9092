/**
 * The error model on the gRPC wire: a BillingError as a status with google.rpc.Status details
 * (ErrorDetail, ErrorInfo, RetryInfo) in the `grpc-status-details-bin` trailer, and back.
 */
import { Metadata, status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import type { Any } from "../../gen/google/protobuf/any.js";
import type { Duration } from "../../gen/google/protobuf/duration.js";
import { ErrorInfo, RetryInfo } from "../../gen/google/rpc/error_details.js";
import { Status } from "../../gen/google/rpc/status.js";
import { ErrorDetail } from "../../gen/velobase/billing/v1/errors.js";
import type { BillingError } from "../errors/billing-error.js";
import { RETRY_DELAY_MS } from "../errors/catalog.js";

export const ERROR_DOMAIN = "billing.velobase";
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

const TYPE_URL_PREFIX = "type.googleapis.com/";

interface Encodable<T> {
  encode(message: T): { finish(): Uint8Array };
}

function pack<T>(typeName: string, codec: Encodable<T>, message: T): Any {
  return { typeUrl: TYPE_URL_PREFIX + typeName, value: Buffer.from(codec.encode(message).finish()) };
}

/** The error's facts as a google.rpc.ErrorInfo (in status details, and in Batch results). */
export const errorInfoOf = (error: BillingError): ErrorInfo => ({
  reason: error.code,
  domain: ERROR_DOMAIN,
  metadata: Object.fromEntries(Object.entries(error.facts).map(([k, v]) => [k, String(v)])),
});

/** The gRPC error the client receives for a BillingError: status, message and rich details. */
export function toServiceError(error: BillingError, trailers = new Metadata()): Partial<ServiceError> {
  const { spec } = error;
  const details: Any[] = [
    pack("velobase.billing.v1.ErrorDetail", ErrorDetail, {
      code: error.code,
      type: spec.type,
      message: error.message,
    }),
    pack("google.rpc.ErrorInfo", ErrorInfo, errorInfoOf(error)),
  ];
  if (spec.retryable) {
    const delayMs = Math.max(0, Math.ceil(error.retryDelayMs ?? RETRY_DELAY_MS));
    const retryDelay: Duration = {
      seconds: BigInt(Math.floor(delayMs / 1000)),
      nanos: (delayMs % 1000) * 1_000_000,
    };
    details.push(pack("google.rpc.RetryInfo", RetryInfo, { retryDelay }));
  }
  const code = GrpcStatus[spec.grpcStatus];
  const status: Status = { code, message: error.message, details };
  trailers.set(STATUS_DETAILS_KEY, Buffer.from(Status.encode(status).finish()));
  return { code, details: error.message, metadata: trailers };
}

/** Client side: the ErrorDetail and ErrorInfo of a failed call, when it carries them. */
export function decodeStatusDetails(metadata: Metadata | undefined): {
  detail?: ErrorDetail;
  info?: ErrorInfo;
  retry?: RetryInfo;
} {
  const raw = metadata?.get(STATUS_DETAILS_KEY)[0];
  if (!(raw instanceof Buffer)) return {};
  const out: { detail?: ErrorDetail; info?: ErrorInfo; retry?: RetryInfo } = {};
  for (const any of Status.decode(raw).details) {
    const name = any.typeUrl.slice(TYPE_URL_PREFIX.length);
    if (name === "velobase.billing.v1.ErrorDetail") out.detail = ErrorDetail.decode(any.value);
    if (name === "google.rpc.ErrorInfo") out.info = ErrorInfo.decode(any.value);
    if (name === "google.rpc.RetryInfo") out.retry = RetryInfo.decode(any.value);
  }
  return out;
}
