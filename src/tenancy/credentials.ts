/**
 * The key a request presents, from either header any transport has: `authorization: Bearer
 * <key>` (preferred) or `x-api-key: <key>`. null when neither is there. An authorization header
 * of another scheme is returned as-is so that authentication rejects it as invalid_api_key,
 * rather than silently falling back to x-api-key.
 */
export function presentedApiKey(authorization: string | undefined, xApiKey: string | undefined): string | null {
  const auth = authorization?.trim();
  if (auth) {
    const bearer = /^Bearer\s+(\S+)$/i.exec(auth);
    return bearer?.[1] ?? auth;
  }
  const key = xApiKey?.trim();
  return key ? key : null;
}
