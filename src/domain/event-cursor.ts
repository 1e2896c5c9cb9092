import { BillingError } from "../errors/billing-error.js";
import { fingerprint } from "./fingerprint.js";

/**
 * Opaque keyset cursors of the event listings: the next page holds events with ids below
 * `before`, and the cursor is bound to the filters it was issued for, so it cannot be replayed
 * against another query.
 */
interface Cursor {
  readonly before: string;
  readonly filters: string;
}

/** A short digest of a query's filters (everything but the cursor and the limit). */
export const filtersDigest = (filters: unknown): string => fingerprint(filters).slice(0, 16);

export function encodeEventCursor(beforeId: bigint, filters: string): string {
  const cursor: Cursor = { before: beforeId.toString(), filters };
  return Buffer.from(JSON.stringify(cursor)).toString("base64url");
}

/** The id the page starts below; a cursor that is not ours, or for other filters → invalid_page_token. */
export function decodeEventCursor(token: string, filters: string): bigint {
  try {
    const cursor = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Partial<Cursor>;
    if (cursor.filters === filters && typeof cursor.before === "string" && /^\d{1,20}$/.test(cursor.before)) {
      return BigInt(cursor.before);
    }
  } catch {
    // Falls through: any undecodable cursor is the caller's mistake.
  }
  throw new BillingError("invalid_page_token", "cursor is not valid for this request.", { field: "cursor" });
}

/** One page of events, newest first; `totalCount` counts every event matching the filters. */
export interface EventPage<T> {
  readonly items: readonly T[];
  readonly totalCount: number;
  readonly hasMore: boolean;
  /** null on the last page. */
  readonly nextCursor: string | null;
}
