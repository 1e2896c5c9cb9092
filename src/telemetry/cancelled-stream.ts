import type { EventEmitter } from "node:events";
import { trace } from "@opentelemetry/api";
import { GRPC_CODE } from "./grpc-codes.js";

/**
 * Ends the active gRPC server span when `call` is cancelled. @opentelemetry/instrumentation-grpc
 * ends a server stream's span on the stream's 'finish' or 'error'; grpc-js destroys a stream its
 * client cancelled, which emits neither, so the span would stay open and never be exported.
 * Call from the stream's handler, where the instrumentation made its span the active one.
 */
export function endSpanOnCancel(call: EventEmitter): void {
  const span = trace.getActiveSpan();
  if (span === undefined) return;
  call.once("cancelled", () => {
    span.setAttribute("rpc.grpc.status_code", GRPC_CODE.CANCELLED);
    span.end();
  });
}
