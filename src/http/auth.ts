import type { FastifyRequest } from "fastify";
import { scopeAllows, type Caller } from "../domain/caller.js";
import { BillingError } from "../errors/billing-error.js";
import type { AuthenticatedCaller } from "../tenancy/authenticator.js";
import { presentedApiKey } from "../tenancy/credentials.js";

/**
 * Resolves an API key (null when the request has none) to its caller, or throws BillingError
 * missing_api_key / invalid_api_key / api_key_revoked: the Authenticator every transport shares.
 */
export type Authenticate = (rawKey: string | null) => Promise<AuthenticatedCaller>;

/** Takes one request from the caller's budget, or throws BillingError rate_limit_exceeded. */
export type RateLimit = (caller: AuthenticatedCaller) => Promise<void>;

/** Who may call a route: anyone, read keys and up, or write keys only. */
export type RouteAccess = "public" | "read" | "write";

const firstOf = (header: string | string[] | undefined): string | undefined => (Array.isArray(header) ? header[0] : header);

/** The key of a request: `Authorization: Bearer <key>` (Velobase's header), else `x-api-key`. */
export function apiKeyOf(request: FastifyRequest): string | null {
  return presentedApiKey(request.headers.authorization, firstOf(request.headers["x-api-key"]));
}

/** Read keys may only read; everything else needs a write key. */
export function checkScope(caller: Caller, access: RouteAccess): void {
  if (access !== "public" && !scopeAllows(caller.scope, access)) {
    throw new BillingError("permission_denied", undefined, { required_scope: access });
  }
}
