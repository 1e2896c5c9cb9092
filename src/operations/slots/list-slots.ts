import type { EventPage } from "../../domain/event-cursor.js";
import { compareClaimOrder, poolView, type PoolView, type SlotEventType } from "../../domain/slots.js";
import { findCustomer } from "../../store/customers-store.js";
import { runQuery } from "../../store/run-transaction.js";
import { readPools, readSlotEvents, type SlotEventRow } from "../../store/slots-store.js";
import type { BillingContext } from "../context.js";
import { listEventPage } from "../event-page.js";

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

export interface SlotEventQuery {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly wallet: string | null;
  readonly resourceId: string | null;
  /** Deduplicated and sorted; empty means all. */
  readonly types: readonly SlotEventType[];
  readonly sources: readonly string[];
  /** Inclusive from, exclusive to, on created_at. */
  readonly fromMs: number | null;
  readonly toMs: number | null;
  readonly cursor: string | null;
  /** 1-100 (parseLimit). */
  readonly limit: number;
}

export type SlotEventView = SlotEventRow;

/** A customer's slot events, newest first, keyset-paginated; an unknown customer has none. */
export function listSlotEvents(ctx: BillingContext, q: SlotEventQuery): Promise<EventPage<SlotEventView>> {
  return listEventPage(ctx, q, readSlotEvents);
}
