import { type BillingError, CallNotRun } from "./billing-error.js";

/** The parts of an HTTP request (Fastify's) that say whether its client is still there. */
interface HttpRequestSeen {
  readonly id: string;
  readonly raw: { readonly destroyed: boolean; readonly complete: boolean };
  readonly routeOptions: { readonly url?: string | undefined };
}

/**
 * Whether the request's body stopped because its client closed the connection (Node's `aborted`,
 * an ECONNRESET under an internal error): nobody is there to answer, and nothing failed on our
 * side. Then it is said in one info line, not logged as an unexpected error. Both HTTP transports
 * (the API and the console) ask it before answering an error.
 */
export function clientWentAway(
  error: BillingError,
  request: HttpRequestSeen,
  log: { info(facts: object, message: string): void },
): boolean {
  const cause = error.cause as { code?: unknown } | undefined;
  const gone = error.spec.grpcStatus === "INTERNAL" && cause?.code === "ECONNRESET" && request.raw.destroyed && !request.raw.complete;
  if (gone)
    log.info({ requestId: request.id, route: request.routeOptions.url }, "the client closed the connection before its request arrived");
  return gone;
}

/**
 * The code an HTTP call is logged and counted under: a call not run because its client had left
 * (HTTP calls have no deadline, so only then) is `cancelled`, not a service_unavailable of ours.
 */
export const httpCallCode = (error: BillingError): string => (error instanceof CallNotRun ? "cancelled" : error.code);
