import type { ServerResponse } from "node:http";

/**
 * A signal that aborts (reason: an `AbortError` DOMException) when the client goes away before
 * its reply is written, so that the operation does not start work whose answer nobody will read.
 * It watches the response, not the request: since Node 16 a request emits `close` as soon as its
 * body has been read, client still there; the response's `close` before its end is the client
 * leaving (or the connection cut).
 */
export function callSignal(response: ServerResponse): { readonly signal: AbortSignal; abort(reason: Error): void } {
  const controller = new AbortController();
  const gone = () => controller.abort(new DOMException("The client went away before the reply.", "AbortError"));
  if (response.destroyed || response.socket?.destroyed === true) gone();
  else {
    response.once("close", () => {
      if (!response.writableEnded) gone();
    });
  }
  // `abort`: the server's own reason (a shutdown that answered the call already).
  return { signal: controller.signal, abort: (reason) => controller.abort(reason) };
}
