import type { EventPage } from "../../domain/event-cursor.js";
import { isExpired, visibleEntitlements, withStatus, type EntitlementWithStatus } from "../../domain/entitlements.js";
import { findCustomer } from "../../store/customers-store.js";
import {
  readEntitlement,
  readEntitlementEvents,
  readEntitlements,
  type EntitlementEventFilter,
  type EntitlementEventRow,
} from "../../store/entitlements-store.js";
import { runQuery } from "../../store/run-transaction.js";
import type { BillingContext } from "../context.js";
import { listEventPage, type EventQuery } from "../event-page.js";
import type { EntitlementTarget } from "./write-entitlements.js";

/**
 * One entitlement, or null when it was never set, was removed or has expired (an unknown
 * customer has none). A not-yet-started one is answered with isActive false.
 */
export function getEntitlement(ctx: BillingContext, input: EntitlementTarget): Promise<EntitlementWithStatus | null> {
  return runQuery(async () => {
    const { db } = ctx.database;
    const customer = await findCustomer(db, input.projectId, input.customerId);
    if (!customer) return null;
    const found = await readEntitlement(db, input.projectId, customer.pk, input.featureKey);
    const nowMs = ctx.now();
    return found === null || isExpired(found, nowMs) ? null : withStatus(found, nowMs);
  });
}

export interface ListEntitlementsInput {
  readonly projectId: bigint;
  readonly customerId: string;
  /** Empty means all. */
  readonly featureKeys: readonly string[];
  readonly includeExpired: boolean;
}

/** A customer's entitlements by feature_key; expired ones only when asked (isActive false). */
export function listEntitlements(ctx: BillingContext, input: ListEntitlementsInput): Promise<EntitlementWithStatus[]> {
  return runQuery(async () => {
    const { db } = ctx.database;
    const customer = await findCustomer(db, input.projectId, input.customerId);
    if (!customer) return [];
    const all = await readEntitlements(db, input.projectId, customer.pk, input.featureKeys);
    return visibleEntitlements(all, ctx.now(), input.includeExpired);
  });
}

/** The store's filter, by customer id instead of pk, with a cursor and a page size. */
export type EntitlementEventQuery = Omit<EntitlementEventFilter, "customerPk"> & EventQuery;

export type EntitlementEventView = EntitlementEventRow;

/** A customer's entitlement events, newest first, keyset-paginated; an unknown customer has none. */
export function listEntitlementEvents(ctx: BillingContext, q: EntitlementEventQuery): Promise<EventPage<EntitlementEventView>> {
  return listEventPage(ctx, q, readEntitlementEvents);
}
