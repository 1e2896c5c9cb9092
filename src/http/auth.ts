import type { FastifyRequest } from "fastify";
import type { Caller } from "../domain/caller.js";
import { BillingError } from "../errors/billing-error.js";

/**
 * Resolves an API key (null when the request has none) to its caller, or throws BillingError
 * missing_api_key / invalid_api_key / api_key_revoked. Shared with the other transports.
 */
export type Authenticate = (rawKey: string | null) => Promise<Caller>;

/** Takes one request from the caller's budget, or throws BillingError rate_limit_exceeded. */
export type RateLimit = (caller: Caller) => Promise<void>;

/** Who may call a route: anyone, read keys and up, or write keys only. */
export type RouteAccess = "public" | "read" | "write";

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * The key of a request: `Authorization: Bearer <key>` (Velobase's header), else `x-api-key`.
 * An Authorization header of another shape is passed on as it is, so it fails as invalid_api_key
 * rather than as a missing key.
 */
export function apiKeyOf(request: FastifyRequest): string | null {
  const authorization = request.headers.authorization;
  if (authorization !== undefined && authorization !== "") return BEARER.exec(authorization)?.[1] ?? authorization;
  const header = request.headers["x-api-key"];
  const key = Array.isArray(header) ? header[0] : header;
  return key === undefined || key === "" ? null : key;
}

/** Read keys may only read; everything else needs a write key. */
export function checkScope(caller: Caller, access: RouteAccess): void {
  if (access === "write" && caller.scope !== "write") throw new BillingError("permission_denied");
}
