import type { BillingError } from "./billing-error.js";

/**
 * The request's body stopped because its client closed the connection (Node's `aborted`, an
 * ECONNRESET under an internal error): nobody is there to answer, and nothing failed on our side.
 * Both HTTP transports (the API and the console) log it at info, not as an unexpected error.
 */
export function clientWentAway(error: BillingError, request: { readonly destroyed: boolean; readonly complete: boolean }): boolean {
  const cause = error.cause as { code?: unknown } | undefined;
  return error.spec.grpcStatus === "INTERNAL" && cause?.code === "ECONNRESET" && request.destroyed && !request.complete;
}
