import type { FastifyRequest } from "fastify";
import { scopeAllows, type Caller } from "../domain/caller.js";
import { BillingError } from "../errors/billing-error.js";
import type { AuthenticatedCaller } from "../tenancy/authenticator.js";
import type { ClientAddress } from "../tenancy/client-address.js";
import { presentedApiKey } from "../tenancy/credentials.js";

/**
 * Resolves an API key (null when the request has none) to its caller, or throws BillingError
 * missing_api_key / invalid_api_key / api_key_revoked: the Authenticator every transport shares.
 * `client`: the client's address, whose unknown keys are counted (PeerFailures).
 */
export type Authenticate = (rawKey: string | null, client: ClientAddress) => Promise<AuthenticatedCaller>;

/** Takes one request from the caller's budget, or throws BillingError rate_limit_exceeded. */
export type RateLimit = (caller: AuthenticatedCaller) => Promise<void>;

/** Who may call a route: anyone, read keys and up, or write keys only. */
export type RouteAccess = "public" | "read" | "write";

/**
 * The key of a request: `Authorization: Bearer <key>` (Velobase's header) or `x-api-key`. Read
 * from the raw headers: Node keeps only the first of two Authorization headers in `headers`.
 */
export function apiKeyOf(request: FastifyRequest): string | null {
  const authorization: string[] = [];
  const xApiKey: string[] = [];
  const raw = request.raw.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]?.toLowerCase();
    const value = raw[i + 1] ?? "";
    if (name === "authorization") authorization.push(value);
    else if (name === "x-api-key") xApiKey.push(value);
  }
  return presentedApiKey(authorization, xApiKey);
}

/** Read keys may only read; everything else needs a write key. */
export function checkScope(caller: Caller, access: RouteAccess): void {
  if (access !== "public" && !scopeAllows(caller.scope, access)) {
    throw new BillingError("permission_denied", undefined, { required_scope: access });
  }
}
