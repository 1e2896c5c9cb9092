import { type BillingError, CallNotRun } from "./billing-error.js";
import { retryAfterSeconds } from "./retry-after.js";

/** The parts of an HTTP request (Fastify's) that say whether its client is still there. */
interface HttpRequestSeen {
  readonly id: string;
  /** Answered at the request timeout already (its body stopped because we closed it). */
  readonly timedOut: boolean;
  readonly raw: { readonly destroyed: boolean; readonly complete: boolean };
  readonly routeOptions: { readonly url?: string | undefined };
}

/** The request's fields its call's log line and metrics are written from (http/http-app.ts). */
interface HttpRequestAnswered extends HttpRequestSeen {
  errorCode: string | null;
  errorCause: object | null;
}

interface ErrorLog {
  info(facts: object, message: string): void;
  error(facts: object, message: string): void;
}

/**
 * Whether the request's body stopped because its client closed the connection (Node's `aborted`,
 * an ECONNRESET under an internal error): nobody is there to answer, and nothing failed on our
 * side. Then it is said in one info line, not logged as an unexpected error. Both HTTP transports
 * (the API and the console) ask it before answering an error.
 */
function clientWentAway(error: BillingError, request: HttpRequestSeen, log: { info(facts: object, message: string): void }): boolean {
  const cause = error.cause as { code?: unknown } | undefined;
  const gone = error.spec.grpcStatus === "INTERNAL" && cause?.code === "ECONNRESET" && request.raw.destroyed && !request.raw.complete;
  // Its body stopped because the timeout closed the connection: that answer has its line already.
  if (gone && request.timedOut) return true;
  if (gone)
    log.info({ requestId: request.id, route: request.routeOptions.url }, "the client closed the connection before its request arrived");
  return gone;
}

/**
 * The code an HTTP call is logged and counted under: a call not run because its client had left
 * (HTTP calls have no deadline, so only then) is `cancelled`, not a service_unavailable of ours.
 */
export const httpCallCode = (error: BillingError): string => (error instanceof CallNotRun ? "cancelled" : error.code);

/**
 * What both HTTP transports (the API and the console) do before they answer an error, each in its
 * own format: the code and cause for the call's log line and metrics, an unexpected error logged
 * with its stack, Retry-After on a retryable one. False when the client has gone: nothing to answer.
 * `cause`: why it was service_unavailable (logger.ts's unavailableCause), or null.
 */
export function readyErrorAnswer(
  error: BillingError,
  cause: object | null,
  request: HttpRequestAnswered,
  reply: { header(name: string, value: string): unknown },
  log: ErrorLog,
): boolean {
  request.errorCode = httpCallCode(error);
  request.errorCause = cause;
  if (clientWentAway(error, request, log)) return false;
  if (error.spec.grpcStatus === "INTERNAL") {
    log.error(
      { requestId: request.id, route: request.routeOptions.url, err: error.cause ?? error },
      "call failed with an unexpected error",
    );
  }
  const retryAfter = retryAfterSeconds(error);
  if (retryAfter !== null) reply.header("retry-after", String(retryAfter));
  return true;
}
