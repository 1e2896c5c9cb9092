import { randomUUID } from "node:crypto";
import { Metadata, status, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { toBillingError, toServiceError } from "../errors/to-grpc-status.js";
import type { Metrics } from "../metrics.js";
import { MalformedRequest } from "./request-decoding.js";

export const REQUEST_ID_HEADER = "x-request-id";
const REQUEST_ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;

export interface CallEnvironment {
  readonly log: Logger;
  readonly metrics?: Metrics;
}

/** The caller's x-request-id when it is sane, else a fresh one. */
function requestIdOf(metadata: Metadata): string {
  const given = metadata.get(REQUEST_ID_HEADER)[0];
  return typeof given === "string" && REQUEST_ID_PATTERN.test(given) ? given : randomUUID();
}

/**
 * Wraps one RPC: request id in and out, one log line per call, metrics, and every failure turned
 * into a structured gRPC error by the one mapper. Unknown errors are logged with their stack and
 * reach the client only as server_error.
 */
export function unary<Req, Res>(
  env: CallEnvironment,
  method: string,
  handle: (request: Req) => Promise<Res>,
): (call: ServerUnaryCall<Req | MalformedRequest, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const requestId = requestIdOf(call.metadata);
    // Headers go out just before the answer, in the same tick, so that HTTP/2 sends them in one
    // write with the message: sent early, they cost a separate packet and a round of ACKs.
    const sendHeaders = () => {
      const headers = new Metadata();
      headers.set(REQUEST_ID_HEADER, requestId);
      call.sendMetadata(headers);
    };

    const finish = (code: string, grpcCode: status, error?: unknown) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      env.metrics?.calls.inc({ method, code });
      env.metrics?.latency.observe({ method }, seconds);
      const line = { requestId, method, code, grpcCode: status[grpcCode], durationMs: Math.round(seconds * 1e6) / 1e3 };
      if (error) env.log.error({ ...line, err: error }, "call failed with an unexpected error");
      else env.log.info(line, "call");
    };

    const request = call.request;
    (request instanceof MalformedRequest ? Promise.reject(request.toError()) : handle(request)).then(
      (response) => {
        finish("ok", status.OK);
        sendHeaders();
        callback(null, response);
      },
      (thrown: unknown) => {
        const error = toBillingError(thrown);
        const grpcCode = status[error.spec.grpcStatus];
        const unexpected = grpcCode === status.INTERNAL;
        finish(error.code, grpcCode, unexpected ? (error.cause ?? error) : undefined);
        const trailers = new Metadata();
        trailers.set(REQUEST_ID_HEADER, requestId);
        sendHeaders();
        callback(toServiceError(error, trailers), null);
      },
    );
  };
}
