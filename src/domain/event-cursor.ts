import { BillingError } from "../errors/billing-error.js";
import { beforeIdOf, encodePageCursor, pageCursorPosition } from "./page-cursor.js";

/** The event listings' cursors (page-cursor.ts): the next page holds events with ids below `before`. */
export const encodeEventCursor = (beforeId: bigint, filters: string): string => encodePageCursor({ before: beforeId.toString() }, filters);

/** The id the page starts below; a cursor that is not ours, or for other filters → invalid_page_token. */
export function decodeEventCursor(token: string, filters: string): bigint {
  const before = pageCursorPosition(token, filters, beforeIdOf);
  if (before === null) throw new BillingError("invalid_page_token", "cursor is not valid for this request.", { field: "cursor" });
  return before;
}

/** One page of events, newest first; `totalCount` counts every event matching the filters. */
export interface EventPage<T> {
  readonly items: readonly T[];
  readonly totalCount: number;
  readonly hasMore: boolean;
  /** null on the last page. */
  readonly nextCursor: string | null;
}
