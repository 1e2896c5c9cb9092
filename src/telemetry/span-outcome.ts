import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { ERROR_CATALOG, type ErrorCode } from "../errors/catalog.js";
import { GRPC_CODE } from "./grpc-codes.js";

/**
 * The gRPC codes that answer the caller's request or choice rather than report a fault of ours:
 * a server span keeps status UNSET for them (OTel RPC semantic conventions). The rest (UNKNOWN,
 * DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS) stay ERROR.
 */
const GRPC_REFUSALS: ReadonlySet<number> = new Set([
  GRPC_CODE.CANCELLED,
  GRPC_CODE.INVALID_ARGUMENT,
  GRPC_CODE.NOT_FOUND,
  GRPC_CODE.ALREADY_EXISTS,
  GRPC_CODE.PERMISSION_DENIED,
  GRPC_CODE.RESOURCE_EXHAUSTED,
  GRPC_CODE.FAILED_PRECONDITION,
  GRPC_CODE.ABORTED,
  GRPC_CODE.OUT_OF_RANGE,
  GRPC_CODE.UNAUTHENTICATED,
]);

const isErrorCode = (value: string): value is ErrorCode => Object.hasOwn(ERROR_CATALOG, value);

/** An error's `code` is what the SDK records as exception.type; a catalogue code below 500 is a refusal. */
function isCatalogueRefusal(exceptionType: unknown): boolean {
  return typeof exceptionType === "string" && isErrorCode(exceptionType) && ERROR_CATALOG[exceptionType].httpStatus < 500;
}

/**
 * Whether an instrumentation marked `span` ERROR for a refusal (an HTTP 4xx, a gRPC client-side
 * code, a catalogue error below 500) rather than for a fault of the server. Server spans are
 * judged by their response's status. @fastify/otel's hook and handler spans end before the reply
 * has one, so there the thrown errors' codes decide.
 */
export function isRefusal(span: ReadableSpan): boolean {
  if (span.status.code !== SpanStatusCode.ERROR) return false;
  const grpcCode = span.attributes["rpc.grpc.status_code"];
  const httpStatus = span.attributes["http.response.status_code"];
  if (span.kind === SpanKind.SERVER && typeof grpcCode === "number") return GRPC_REFUSALS.has(grpcCode);
  if (span.kind === SpanKind.SERVER && typeof httpStatus === "number") return httpStatus < 500;
  const thrown = span.events.filter((event) => event.name === "exception").map((event) => event.attributes?.["exception.type"]);
  return thrown.length > 0 && thrown.every(isCatalogueRefusal);
}
