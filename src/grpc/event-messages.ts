import type { Event, WatchEventsRequest } from "../../gen/velobase/billing/v1/events.js";
import { cursorEventOf, encodeFeedCursor, EVENT_TYPES, type BalanceAfter, type FeedEvent } from "../domain/events.js";
import { parseClosedValues } from "../domain/event-query.js";
import { EVENT_FILTER_VALUES_MAX } from "../domain/limits.js";
import { parseId } from "../domain/validation.js";
import type { EventQuery } from "../operations/events/read-events.js";
import { timestamp } from "./format-responses.js";

/** EventService requests → operation inputs, and feed events → messages. */

export function parseWatchEvents(r: WatchEventsRequest, projectId: bigint): EventQuery {
  return {
    projectId,
    cursor: r.cursor,
    customerId: r.customerId === "" ? null : parseId(r.customerId, "customer_id", "customer_id_required"),
    types: parseClosedValues(r.types, EVENT_TYPES, "types", EVENT_FILTER_VALUES_MAX),
  };
}

const balance = (b: BalanceAfter) => ({ total: b.total, used: b.used, frozen: b.frozen, available: b.available });

export function eventMessage(e: FeedEvent): Event {
  return {
    id: e.eventId,
    cursor: encodeFeedCursor(e.projectPosition, "project", cursorEventOf(e)),
    type: e.type,
    customerId: e.customerId ?? undefined,
    transactionId: e.transactionId ?? undefined,
    entries: e.payload.entries.map((entry) => ({
      sequence: entry.sequence,
      operation: entry.operation,
      amount: entry.amount,
      accountId: entry.accountId.toString(),
      creditType: entry.creditType,
      balanceAfter: balance(entry.balanceAfter),
    })),
    balanceAfter: e.payload.balanceAfter === null ? undefined : balance(e.payload.balanceAfter),
    createdAt: timestamp(e.createdAtMs),
    data: { ...e.payload.data },
  };
}
