import { Metadata, status, type ServerWritableStream } from "@grpc/grpc-js";
import type { Caller, Scope } from "../domain/caller.js";
import { BillingError } from "../errors/billing-error.js";
import { toBillingError } from "../errors/billing-error.js";
import { toServiceError } from "./status-details.js";
import { MalformedRequest } from "./request-decoding.js";
import { admit, callLineOf, presentedKeyOf, REQUEST_ID_HEADER, requestIdOf, type GuardedEnvironment } from "./unary.js";
import { endSpanOnCancel } from "../telemetry/cancelled-stream.js";

/** What a server stream needs beside a unary call's environment: the server's own end. */
export interface StreamEnvironment extends GuardedEnvironment {
  /** Aborted when the server shuts down: open streams end with service_unavailable, so clients resume elsewhere. */
  readonly closing: AbortSignal;
}

/** What a stream handler gets: the caller, a signal that aborts on cancel or shutdown, and a send that honours backpressure. */
export interface StreamCall<Res> {
  readonly caller: Caller;
  readonly signal: AbortSignal;
  send(message: Res): Promise<void>;
}

/**
 * `guarded` for a server-streaming RPC: request id out as a header, the same key, scope and rate
 * limit (one token per stream), one log line and metrics when the stream ends, and every failure
 * turned into a structured status by the one mapper. The handler runs until it returns (the
 * status is then OK), throws (that error), or its signal aborts: the client cancelled (nothing
 * more is sent) or the server is shutting down (service_unavailable).
 */
export function guardedStream<Req, Res>(
  env: StreamEnvironment,
  method: string,
  scope: Scope,
  handle: (request: Req, call: StreamCall<Res>) => Promise<void>,
): (call: ServerWritableStream<Req | MalformedRequest, Res>) => void {
  return (call) => {
    const started = process.hrtime.bigint();
    const requestId = requestIdOf(call.metadata);
    const headers = new Metadata();
    headers.set(REQUEST_ID_HEADER, requestId);
    call.sendMetadata(headers);

    endSpanOnCancel(call);
    const aborter = new AbortController();
    const abort = () => aborter.abort();
    call.on("cancelled", abort);
    env.closing.addEventListener("abort", abort);

    let caller: Caller | null = null;
    const finish = (code: string, grpcCode: status, error?: unknown) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      env.metrics?.calls.inc({ method, code });
      const line = callLineOf({ requestId, method, code, grpcCode, seconds, caller });
      if (error) env.log.error({ ...line, err: error }, "stream failed with an unexpected error");
      else env.log.info(line, "stream");
    };
    const fail = (thrown: unknown) => {
      const error = toBillingError(thrown);
      const grpcCode = status[error.spec.grpcStatus];
      finish(error.code, grpcCode, grpcCode === status.INTERNAL ? (error.cause ?? error) : undefined);
      if (call.cancelled) return;
      const trailers = new Metadata();
      trailers.set(REQUEST_ID_HEADER, requestId);
      call.emit("error", toServiceError(error, trailers));
    };

    const send = sendHonouringBackpressure(call, aborter.signal);

    // Set when the stream's key stops being valid while it is open: the stream ends with it.
    let refusal: BillingError | null = null;
    let stopRechecks = () => {};
    const run = async () => {
      const request = call.request;
      const admitted = await admit(env, call.metadata, call.getPeer(), scope, 1);
      caller = admitted;
      if (request instanceof MalformedRequest) throw request.toError();
      stopRechecks = recheckWhileOpen(env, presentedKeyOf(call.metadata), (error) => {
        refusal = error;
        abort();
      });
      await handle(request, { caller: admitted, signal: aborter.signal, send });
    };

    run()
      .then(
        () => {
          if (call.cancelled) return finish("cancelled", status.CANCELLED);
          if (refusal !== null) return fail(refusal);
          if (env.closing.aborted)
            return fail(new BillingError("service_unavailable", "The server is shutting down; resume from the last cursor."));
          finish("ok", status.OK);
          call.end();
        },
        (error: unknown) => (call.cancelled ? finish("cancelled", status.CANCELLED) : fail(error)),
      )
      .finally(() => {
        stopRechecks();
        call.off("cancelled", abort);
        env.closing.removeEventListener("abort", abort);
      });
  };
}

/**
 * Checks an open stream's key again every `recheckIntervalMs` (API_KEY_CACHE_TTL_MS), past the
 * cache: a key revoked or deleted meanwhile ends the stream with that refusal, as it refuses new
 * calls. A database that does not answer ends nothing here (the stream's own reads say so).
 */
function recheckWhileOpen(env: GuardedEnvironment, presented: string | null, end: (refusal: BillingError) => void): () => void {
  if (presented === null) return () => {};
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  // The next check is timed from the end of the last one: a slow database never piles them up.
  const next = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      env.authenticator.recheck(presented).then(next, (error: unknown) => {
        const refusal = toBillingError(error);
        if (refusal.code === "api_key_revoked" || refusal.code === "invalid_api_key") end(refusal);
        else next();
      });
    }, env.authenticator.recheckIntervalMs);
    timer.unref();
  };
  next();
  return () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
  };
}
/** A stream's send: resolves once the message is written, or when the stream can take no more (ended, cancelled, destroyed). */
function sendHonouringBackpressure<Res>(call: ServerWritableStream<unknown, Res>, signal: AbortSignal): (message: Res) => Promise<void> {
  return (message) =>
    new Promise((resolve) => {
      if (call.cancelled || call.destroyed || signal.aborted) return resolve();
      if (call.write(message)) return resolve();
      // A stream cancelled, ended by shutdown or destroyed while its client is not reading
      // never drains: waiting for "drain" alone kept its handler, its watcher slot and its
      // feed listener for good. Whichever comes first ends the wait.
      const done = () => {
        call.off("drain", done);
        call.off("close", done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      call.once("drain", done);
      call.once("close", done);
      signal.addEventListener("abort", done, { once: true });
    });
}
