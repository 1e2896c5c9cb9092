import type { FastifyReply, FastifyRequest } from "fastify";

/**
 * The session cookie: a signed random id, sent only to /console, never readable by scripts.
 * SameSite=Lax: a link to a console page from elsewhere (a ticket, a chat) opens it signed in;
 * every console GET only reads, and every form post also needs the CSRF token (its cookie Strict).
 */
export const SESSION_COOKIE = "vb_console_session";
export const CONSOLE_PATH = "/console";

export interface CookieSettings {
  readonly secure: boolean;
  readonly ttlMs: number;
}

export function setSessionCookie(reply: FastifyReply, sessionId: string, settings: CookieSettings): void {
  void reply.setCookie(SESSION_COOKIE, sessionId, {
    signed: true,
    httpOnly: true,
    secure: settings.secure,
    sameSite: "lax",
    path: CONSOLE_PATH,
    maxAge: Math.floor(settings.ttlMs / 1000),
  });
}

export function clearSessionCookie(reply: FastifyReply, settings: CookieSettings): void {
  void reply.clearCookie(SESSION_COOKIE, { httpOnly: true, secure: settings.secure, sameSite: "lax", path: CONSOLE_PATH });
}

/** The session id of the request's cookie when its signature holds, else null. */
export function sessionIdOf(request: FastifyRequest): string | null {
  const raw = request.cookies[SESSION_COOKIE];
  if (raw === undefined) return null;
  const unsigned = request.unsignCookie(raw);
  return unsigned.valid && unsigned.value !== null && unsigned.value !== "" ? unsigned.value : null;
}
