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

/**
 * Over HTTPS, browsers are told to come back only over HTTPS for a year (RFC 6797): a later
 * http:// link is upgraded before it leaves the browser, so no one on the path can strip TLS from
 * a sign-in. A browser ignores it over plain HTTP. Not includeSubDomains: the console cannot speak
 * for the other hosts of its domain.
 */
const STRICT_TRANSPORT_SECURITY = "max-age=31536000";

export function setSecurityHeaders(reply: FastifyReply, overHttps: boolean): void {
  if (overHttps) void reply.header("strict-transport-security", STRICT_TRANSPORT_SECURITY);
  void reply.header("content-security-policy", CONTENT_SECURITY_POLICY);
  void reply.header("x-content-type-options", "nosniff");
  void reply.header("x-frame-options", "DENY");
  void reply.header("referrer-policy", "same-origin");
  // A page of another site that opened the console (window.open) keeps no handle on its window,
  // so it cannot later send that window, signed in or not, to a look-alike sign-in page; and
  // no other site may load a console answer as an image, a script or a style.
  void reply.header("cross-origin-opener-policy", "same-origin");
  void reply.header("cross-origin-resource-policy", "same-origin");
}
