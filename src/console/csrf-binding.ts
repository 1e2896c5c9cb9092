import { createHmac } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { sessionIdOf } from "./session-cookie.js";

/**
 * What the console's CSRF tokens are bound to: the live session of a signed-in request, a fixed
 * word before sign-in (the library needs a non-empty value). A token works only with the session
 * it was made for, so a token obtained elsewhere (or a CSRF cookie planted beside it) stops
 * working once the operator signs in: the OWASP advice to renew the token at sign-in, with no
 * second secret to keep.
 */
export const csrfBindingOf = (request: FastifyRequest): string =>
  (request.consoleCaller === null ? null : sessionIdOf(request)) ?? "signed-out";

/** The CSRF tokens' HMAC key: derived from the cookie secret, so every instance checks the others' tokens. */
export const csrfKeyOf = (cookieSecret: string): Buffer => createHmac("sha256", cookieSecret).update("velobase console csrf").digest();
