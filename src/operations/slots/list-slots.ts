import type { EventPage } from "../../domain/event-cursor.js";
import { compareClaimOrder, poolView, type PoolView } from "../../domain/slots.js";
import { findCustomer } from "../../store/customers-store.js";
import { runQuery } from "../../store/run-transaction.js";
import { readPools, readSlotEvents, type SlotEventFilter, type SlotEventRow } from "../../store/slots-store.js";
import type { BillingContext } from "../context.js";
import { listEventPage, type EventQuery } from "../event-page.js";

export interface ListPoolsInput {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly wallet: string | null;
}

/** A customer's pools in claim order; an unknown customer has none. */
export function listPools(ctx: BillingContext, input: ListPoolsInput): Promise<PoolView[]> {
  return runQuery(async () => {
    const { db } = ctx.database;
    const customer = await findCustomer(db, input.projectId, input.customerId);
    if (!customer) return [];
    const pools = await readPools(db, input.projectId, customer.pk, input.wallet);
    return pools.sort(compareClaimOrder).map(poolView);
  });
}

/** The store's filter, by customer id instead of pk, with a cursor and a page size. */
export type SlotEventQuery = Omit<SlotEventFilter, "customerPk"> & EventQuery;

export type SlotEventView = SlotEventRow;

/** A customer's slot events, newest first, keyset-paginated; an unknown customer has none. */
export function listSlotEvents(ctx: BillingContext, q: SlotEventQuery): Promise<EventPage<SlotEventView>> {
  return listEventPage(ctx, q, readSlotEvents);
}
