import { fingerprint } from "./fingerprint.js";

/**
 * Opaque keyset cursors of every listing: base64url JSON of where the next page goes on from,
 * bound to a digest of the filters it was issued for, so it cannot be replayed against another
 * query. Each listing names its own position fields and says what refusing a cursor answers.
 */
export type CursorPosition = Readonly<Record<string, string>>;

/** A short digest of a query's filters (everything but the cursor and the page size). */
export const filtersDigest = (filters: unknown): string => fingerprint(filters).slice(0, 16);

export function encodePageCursor(position: CursorPosition, filters: string): string {
  return Buffer.from(JSON.stringify({ ...position, filters })).toString("base64url");
}

/** The position of a cursor issued for these filters, as `read` takes it; null for any other token. */
export function pageCursorPosition<T>(
  token: string,
  filters: string,
  read: (fields: Readonly<Record<string, unknown>>) => T | null,
): T | null {
  try {
    const fields: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (typeof fields !== "object" || fields === null || Array.isArray(fields)) return null;
    const record = fields as Readonly<Record<string, unknown>>;
    return record.filters === filters ? read(record) : null;
  } catch {
    // Not JSON: any undecodable cursor is the caller's mistake.
    return null;
  }
}

/** The `before` id of the listings that page newest first by an id or a sequence. */
export const beforeIdOf = (fields: Readonly<Record<string, unknown>>): bigint | null =>
  typeof fields.before === "string" && /^\d{1,20}$/.test(fields.before) ? BigInt(fields.before) : null;
