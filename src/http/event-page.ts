import Type, { type TSchema } from "typebox";
import type { EventPage } from "../domain/event-cursor.js";
import { parseLimit } from "../domain/event-query.js";
import { EVENT_LIMIT_DEFAULT, EVENT_LIMIT_MAX } from "../domain/limits.js";
import { parseIsoField } from "./iso-time.js";
import { IsoInput, Nullable } from "./schemas.js";

/** What the slot and entitlement event listings share: paging and time-window query fields, and the page. */

export const EventQueryFields = {
  cursor: Type.Optional(Type.String({ description: "next_cursor of the previous page (bound to the same filters)." })),
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: EVENT_LIMIT_MAX, default: EVENT_LIMIT_DEFAULT, description: "Events per page." }),
  ),
  from_at: Type.Optional(IsoInput("Only events created at or after this instant.")),
  to_at: Type.Optional(IsoInput("Only events created before this instant.")),
};

interface EventQuery {
  readonly cursor?: string;
  readonly limit?: number;
  readonly from_at?: string;
  readonly to_at?: string;
}

/** The shared query fields as the operations take them; an empty cursor is none. */
export function eventWindowOf(query: EventQuery) {
  return {
    fromMs: parseIsoField(query.from_at, "from_at", "invalid_from_at", "up"),
    toMs: parseIsoField(query.to_at, "to_at", "invalid_to_at", "up"),
    cursor: query.cursor === undefined || query.cursor === "" ? null : query.cursor,
    limit: parseLimit(query.limit ?? null),
  };
}

export const EventPageReply = <T extends TSchema>(item: T) =>
  Type.Object({
    items: Type.Array(item, { description: "Newest first." }),
    total_count: Type.Integer({ description: "Events matching the filters, on all pages." }),
    has_more: Type.Boolean(),
    next_cursor: Nullable(Type.String({ description: "null on the last page." })),
  });

export const eventPageJson = <T, J>(page: EventPage<T>, item: (event: T) => J) => ({
  items: page.items.map(item),
  total_count: page.totalCount,
  has_more: page.hasMore,
  next_cursor: page.nextCursor,
});
