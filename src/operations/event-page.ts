import { decodeEventCursor, encodeEventCursor, type EventPage } from "../domain/event-cursor.js";
import { filtersDigest } from "../domain/page-cursor.js";
import type { Db } from "../store/database.js";
import { findCustomer } from "../store/customers-store.js";
import { runQuery } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";

/** What every event listing (slots, entitlements) takes beside its own filters. */
export interface EventQuery {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly cursor: string | null;
  /** 1-100 (parseLimit). */
  readonly limit: number;
}

/** Reads up to `limit` events older than `beforeId`, newest first, and how many match in all. */
export type ReadEvents<Q, R> = (
  db: Db,
  filter: Q & { readonly customerPk: bigint },
  beforeId: bigint | null,
  limit: number,
) => Promise<{ rows: R[]; totalCount: number }>;

/**
 * One page of a customer's events, newest first, with a keyset cursor bound to the filters it
 * was issued for; an unknown customer has none.
 */
export function listEventPage<Q extends EventQuery, R extends { readonly id: bigint }>(
  ctx: BillingContext,
  q: Q,
  read: ReadEvents<Q, R>,
): Promise<EventPage<R>> {
  return runQuery(async () => {
    const filters = filtersDigest({ ...q, cursor: undefined, limit: undefined });
    const beforeId = q.cursor === null ? null : decodeEventCursor(q.cursor, filters);
    const { db } = ctx.database;
    const customer = await findCustomer(db, q.projectId, q.customerId);
    if (!customer) return { items: [], totalCount: 0, hasMore: false, nextCursor: null };
    const { rows, totalCount } = await read(db, { ...q, customerPk: customer.pk }, beforeId, q.limit + 1);
    const items = rows.slice(0, q.limit);
    const last = items.at(-1);
    const hasMore = rows.length > q.limit;
    return { items, totalCount, hasMore, nextCursor: hasMore && last ? encodeEventCursor(last.id, filters) : null };
  });
}
