import type { FastifyReply } from "fastify";

/**
 * Scripts, styles and images come only from the console itself (no inline script, no inline
 * style attribute, no eval); nothing may frame it; forms post only to it.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

export function setSecurityHeaders(reply: FastifyReply): void {
  void reply.header("content-security-policy", CONTENT_SECURITY_POLICY);
  void reply.header("x-content-type-options", "nosniff");
  void reply.header("x-frame-options", "DENY");
  void reply.header("referrer-policy", "same-origin");
}
