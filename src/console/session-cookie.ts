import type { FastifyReply, FastifyRequest } from "fastify";

/**
 * The session cookie: a signed random id, sent only to /console, never readable by scripts.
 * SameSite=Lax: a link to a console page from elsewhere (a ticket, a chat) opens it signed in;
 * every console GET only reads, and every form post also needs the CSRF token (its cookie Strict).
 */
export const SESSION_COOKIE = "vb_console_session";
export const CONSOLE_PATH = "/console";

/**
 * Whether the browser reached the console over HTTPS: TLS on this listener, or, behind a proxy in
 * TRUSTED_PROXIES, the `X-Forwarded-Proto` it sent (Fastify's `request.protocol`; a scheme is
 * case-insensitive, RFC 3986). The console's cookies are then `Secure`, so a browser never sends
 * them over plain HTTP.
 */
export const reachedOverHttps = (request: FastifyRequest): boolean => request.protocol.toLowerCase() === "https";

export function setSessionCookie(reply: FastifyReply, sessionId: string, ttlMs: number): void {
  void reply.setCookie(SESSION_COOKIE, sessionId, {
    signed: true,
    httpOnly: true,
    secure: reachedOverHttps(reply.request),
    sameSite: "lax",
    path: CONSOLE_PATH,
    maxAge: Math.floor(ttlMs / 1000),
  });
}

export function clearSessionCookie(reply: FastifyReply): void {
  void reply.clearCookie(SESSION_COOKIE, { httpOnly: true, secure: reachedOverHttps(reply.request), sameSite: "lax", path: CONSOLE_PATH });
}

/** The session id of the request's cookie when its signature holds, else null. */
export function sessionIdOf(request: FastifyRequest): string | null {
  const raw = request.cookies[SESSION_COOKIE];
  if (raw === undefined) return null;
  const unsigned = request.unsignCookie(raw);
  return unsigned.valid && unsigned.value !== null && unsigned.value !== "" ? unsigned.value : null;
}
