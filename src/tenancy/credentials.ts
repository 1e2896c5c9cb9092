import { BillingError } from "../errors/billing-error.js";

/**
 * The key a request presents, from the headers every transport has: `authorization: Bearer
 * <key>` or `x-api-key: <key>`, each given at most once (every value of each header, as sent).
 * Both may name the same key; naming two keys, or sending either header twice, is ambiguous and
 * refused as invalid_api_key (a proxy could read one key and this server another). null when
 * neither is there. An authorization header of another scheme is returned as-is so that
 * authentication rejects it as invalid_api_key. Surrounding whitespace never counts.
 */
export function presentedApiKey(authorization: readonly string[], xApiKey: readonly string[]): string | null {
  const fromAuthorization = authorization.map(keyOfAuthorization).filter((key) => key !== "");
  const fromHeader = xApiKey.map((value) => value.trim()).filter((key) => key !== "");
  if (fromAuthorization.length > 1 || fromHeader.length > 1) throw ambiguous();
  const [first] = fromAuthorization;
  const [second] = fromHeader;
  if (first !== undefined && second !== undefined && first !== second) throw ambiguous();
  return first ?? second ?? null;
}

function keyOfAuthorization(value: string): string {
  const auth = value.trim();
  return /^Bearer\s+(\S+)$/i.exec(auth)?.[1] ?? auth;
}

const ambiguous = () => new BillingError("invalid_api_key", "The request presents more than one API key.");
