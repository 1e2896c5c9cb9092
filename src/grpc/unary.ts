import { randomUUID } from "node:crypto";
import { Metadata, status, type MethodDefinition, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { callerOnLine, scopeAllows, type Caller, type Scope } from "../domain/caller.js";
import { BillingError, CallNotRun, toBillingError } from "../errors/billing-error.js";
import { toServiceError } from "./status-details.js";
import type { Metrics } from "../metrics.js";
import type { BillingContext } from "../operations/context.js";
import type { Authenticator } from "../tenancy/authenticator.js";
import { addressOfPeer, clientAddressOf, type ProxyTrust } from "../tenancy/client-address.js";
import { presentedApiKey } from "../tenancy/credentials.js";
import type { RateLimiter } from "../tenancy/rate-limiter.js";
import { callSignal, cancelledByClient } from "./call-signal.js";
import { MalformedRequest } from "./request-decoding.js";
import type { InFlightCalls } from "../operations/in-flight-calls.js";
import { unavailableCause } from "../logger.js";

export const REQUEST_ID_HEADER = "x-request-id";
const REQUEST_ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;

export interface CallEnvironment {
  readonly log: Logger;
  readonly metrics?: Metrics;
  /** The calls in flight, answered service_unavailable if a shutdown's grace runs out on them. */
  readonly inFlight?: InFlightCalls;
}

/** What guarded RPCs need beside logging: who is calling, and whether they may call now. */
export interface GuardedEnvironment extends CallEnvironment {
  readonly authenticator: Authenticator;
  readonly rateLimiter: RateLimiter;
  /** The proxies whose `x-forwarded-for` names the client (TRUSTED_PROXIES; `trustNoProxy` when unset). */
  readonly proxyTrust: ProxyTrust;
}

/**
 * grpc-js serializes a response inside the callback and answers a failure there with a bare
 * INTERNAL that nobody logs, so `unary` serializes first (with the serializer registered for the
 * call's path) and the service definition hands grpc-js these bytes, found by response object.
 */
const serializedResponses = new WeakMap<object, Buffer>();
const responseSerializers = new Map<string, (value: unknown) => Buffer>();

/**
 * The definition with each response serializer reusing the bytes `unary` produced; every service
 * is registered through it (see server.ts).
 */
export function withSerializedResponses<D extends ServiceDefinition>(definition: D): D {
  const wrapped: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition) as Array<[string, MethodDefinition<unknown, unknown>]>) {
    const serialize = method.responseSerialize;
    responseSerializers.set(method.path, serialize);
    wrapped[name] = {
      ...method,
      responseSerialize: (value: unknown) => {
        const bytes = typeof value === "object" && value !== null ? serializedResponses.get(value) : undefined;
        return bytes ?? serialize(value);
      },
    };
  }
  return wrapped as D;
}

/** The fields of a gRPC call's (or stream's) one log line. */
export const callLineOf = (c: {
  requestId: string;
  method: string;
  code: string;
  grpcCode: status;
  seconds: number;
  caller: Caller | null;
}) => ({
  requestId: c.requestId,
  method: c.method,
  code: c.code,
  grpcCode: status[c.grpcCode],
  durationMs: Math.round(c.seconds * 1e6) / 1e3,
  ...callerOnLine(c.caller),
});

/** An x-request-id as given, when it is one (1-128 characters of [A-Za-z0-9_.:@-]); else null. */
export const saneRequestId = (given: unknown): string | null =>
  typeof given === "string" && REQUEST_ID_PATTERN.test(given) ? given : null;

/** The call's x-request-id (server.ts gives every call a sane one; a fresh one otherwise). */
export const requestIdOf = (metadata: Metadata): string => saneRequestId(metadata.get(REQUEST_ID_HEADER)[0]) ?? randomUUID();

/**
 * Wraps one RPC: request id in and out, one log line per call, metrics, and every failure turned
 * into a structured gRPC error by the one mapper. Unknown errors are logged with their stack and
 * reach the client only as server_error. The response is encoded before it is sent, so one that
 * cannot be (an int64 out of range) is a logged server_error too. The handler gets the call's
 * signal (call-signal.ts), which aborts at its deadline or when the client cancels it.
 */
export function unary<Req, Res>(
  env: CallEnvironment,
  method: string,
  handle: (
    request: Req | MalformedRequest,
    metadata: Metadata,
    signal: AbortSignal,
    requestId: string,
    peer: string,
    admitted: (caller: Caller) => void,
  ) => Promise<Res>,
): (call: ServerUnaryCall<Req | MalformedRequest, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    const started = process.hrtime.bigint();
    let caller: Caller | null = null;
    const requestId = requestIdOf(call.metadata);
    const watched = callSignal(call);
    // Headers go out just before the answer, in the same tick, so that HTTP/2 sends them in one
    // write with the message: sent early, they cost a separate packet and a round of ACKs.
    const sendHeaders = () => {
      const headers = new Metadata();
      headers.set(REQUEST_ID_HEADER, requestId);
      call.sendMetadata(headers);
    };

    const finish = (code: string, grpcCode: status, error?: unknown, cause?: object) => {
      watched.release();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      env.metrics?.calls.inc({ method, code });
      env.metrics?.latency.observe({ method }, seconds);
      const line = { ...callLineOf({ requestId, method, code, grpcCode, seconds, caller }), cause };
      if (error) env.log.error({ ...line, err: error }, "call failed with an unexpected error");
      else env.log.info(line, "call");
    };

    // Answered once: by the handler, or by a shutdown whose grace ran out first (InFlightCalls).
    let answered = false;
    const answering = (): boolean => {
      if (answered) return false;
      answered = true;
      forget();
      return true;
    };
    const fail = (thrown: unknown) => {
      if (!answering()) return;
      const error = toBillingError(thrown);
      const grpcCode = status[error.spec.grpcStatus];
      const unexpected = grpcCode === status.INTERNAL;
      // Not run because its client cancelled it (not its deadline, which may be our slowness):
      // counted as the client's cancel, as grpc-js answers it, not as a service_unavailable of ours.
      if (error instanceof CallNotRun && cancelledByClient(watched.signal)) finish("cancelled", status.CANCELLED);
      else finish(error.code, grpcCode, unexpected ? (error.cause ?? error) : undefined, unavailableCause(error));
      const trailers = new Metadata();
      trailers.set(REQUEST_ID_HEADER, requestId);
      sendHeaders();
      callback(toServiceError(error, trailers), null);
    };

    const forget =
      env.inFlight?.add((error) => {
        if (answered) return false;
        fail(error);
        // Work not begun yet (queued behind its customer, waiting for a connection) is not begun now.
        watched.abort(error);
        return true;
      }) ?? (() => false);
    const admitted = (who: Caller) => {
      caller = who;
    };
    handle(call.request, call.metadata, watched.signal, requestId, call.getPeer(), admitted).then((response) => {
      const serialize = responseSerializers.get(call.getPath());
      if (serialize && typeof response === "object" && response !== null) {
        try {
          serializedResponses.set(response, serialize(response));
        } catch (error) {
          fail(new Error(`${method} response cannot be serialized`, { cause: error }));
          return;
        }
      }
      if (!answering()) return;
      finish("ok", status.OK);
      sendHeaders();
      callback(null, response);
    }, fail);
  };
}

const textsOf = (metadata: Metadata, key: string): string[] => metadata.get(key).filter((v): v is string => typeof v === "string");

/** The API key a call presents (authorization: Bearer, or x-api-key), null when none. */
export const presentedKeyOf = (metadata: Metadata): string | null =>
  presentedApiKey(textsOf(metadata, "authorization"), textsOf(metadata, "x-api-key"));

/**
 * Authenticates a call from its metadata (`authorization: Bearer <key>` or `x-api-key`), checks
 * the key's scope against the method's, and takes a token from its rate limit.
 */
export async function admit(env: GuardedEnvironment, metadata: Metadata, peer: string, scope: Scope, points = 1): Promise<Caller> {
  const presented = presentedKeyOf(metadata);
  const client = () => clientAddressOf(addressOfPeer(peer), textsOf(metadata, "x-forwarded-for"), env.proxyTrust);
  const caller = await env.authenticator.authenticate(presented, client);
  if (!scopeAllows(caller.scope, scope)) throw new BillingError("permission_denied", undefined, { required_scope: scope });
  await env.rateLimiter.consume(caller, points);
  return caller;
}

/**
 * `guarded` for the handlers of one service: each gets the operations' context with its call's
 * signal (deadline, cancel), so no handler can run an operation without it.
 */
export function guardedIn(ctx: BillingContext, env: GuardedEnvironment) {
  return <Req, Res>(
    method: string,
    scope: Scope,
    handle: (request: Req, caller: Caller, context: BillingContext) => Promise<Res>,
    costOf?: (request: Req) => number,
  ) =>
    guarded<Req, Res>(
      env,
      method,
      scope,
      (request, caller, signal) => handle(request, caller, { ...ctx, signal, tenant: caller.projectId.toString() }),
      costOf,
    );
}

/**
 * `unary` for an RPC that needs a key: the handler runs only for an admitted caller, and gets it.
 * Every service (BillingService, SlotService, EntitlementService) wraps its methods with this,
 * naming the scope each one requires.
 */
export function guarded<Req, Res>(
  env: GuardedEnvironment,
  method: string,
  scope: Scope,
  handle: (request: Req, caller: Caller, signal: AbortSignal) => Promise<Res>,
  /** Rate-limit tokens the call takes: one, or one per write for a Batch. */
  costOf: (request: Req) => number = () => 1,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return unary(env, method, async (request: Req | MalformedRequest, metadata, signal, requestId, peer, admitted) => {
    // The key first: a caller without a valid key learns nothing, not even that its bytes are
    // malformed, and malformed calls count against the rate limit like any other.
    const cost = request instanceof MalformedRequest ? 1 : Math.max(1, costOf(request));
    const caller = await admit(env, metadata, peer, scope, cost);
    admitted(caller);
    if (request instanceof MalformedRequest) throw request.toError();
    return handle(request, { ...caller, requestId }, signal);
  });
}
