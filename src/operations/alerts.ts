import { type BalanceAlert, availableFor, stateFor } from "../domain/balance-alerts.js";
import { ALERTS_PER_CUSTOMER_MAX } from "../domain/limits.js";
import { encodePageCursor, filtersDigest, pageCursorPosition } from "../domain/page-cursor.js";
import { BillingError } from "../errors/billing-error.js";
import { type AlertPosition, removeAlert, listAlerts as listAlertRows, lockCustomerAvailable, upsertAlert } from "../store/alerts-store.js";
import { runQuery } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";
import { runWriteTransaction } from "./pipeline.js";

export interface AlertTarget {
  readonly projectId: bigint;
  readonly customerId: string;
  /** null: every credit type. */
  readonly creditType: string | null;
}

export interface SetAlertInput extends AlertTarget {
  readonly threshold: bigint;
}

/**
 * Creates or replaces a customer's alert. Under the customer's lock (the one every write takes
 * first), so its starting state is the balance as the writes see it: armed at or above the
 * threshold, else low (depleted at 0), and no write crosses it unseen meanwhile.
 */
export function setAlert(ctx: BillingContext, input: SetAlertInput): Promise<{ alert: BalanceAlert; created: boolean }> {
  return runWriteTransaction(ctx, async (tx) => {
    const nowMs = ctx.now();
    const locked = await tx.runBatch(lockCustomerAvailable(input.projectId, input.customerId, nowMs));
    if (locked === null) throw new BillingError("customer_not_found", undefined, { customer_id: input.customerId });
    const replaces = locked.alertCreditTypes.has(input.creditType ?? "");
    if (!replaces && locked.alertCreditTypes.size >= ALERTS_PER_CUSTOMER_MAX) {
      throw new BillingError(
        "invalid_argument",
        `This customer has ${locked.alertCreditTypes.size} alerts, the most a customer may have; delete one first.`,
        { field: "credit_type", alerts_per_customer_max: ALERTS_PER_CUSTOMER_MAX },
      );
    }
    const state = stateFor(input.threshold, availableFor(locked.available, input.creditType));
    return tx.runBatch(upsertAlert({ ...input, customerPk: locked.customerPk, state, nowMs }), { commit: true });
  });
}

export interface AlertQuery {
  readonly projectId: bigint;
  /** null: every customer's. */
  readonly customerId: string | null;
  /** 1-100 (PAGE_SIZE_MAX). */
  readonly pageSize: number;
  readonly pageToken: string | null;
}

export interface AlertPage {
  readonly alerts: BalanceAlert[];
  /** "" on the last page. */
  readonly nextPageToken: string;
}

/** A page of alerts by customer then credit type; its cursor names the last one and the customer filter. */
export function listAlerts(ctx: BillingContext, q: AlertQuery): Promise<AlertPage> {
  const filters = filtersDigest({ customerId: q.customerId });
  return runQuery(async () => {
    const after = q.pageToken === null ? null : pageCursorPosition(q.pageToken, filters, alertPositionOf);
    if (q.pageToken !== null && after === null) throw new BillingError("invalid_page_token", undefined, { field: "page_token" });
    const rows = await listAlertRows(ctx.database.pool, q.projectId, q.customerId, after, q.pageSize + 1);
    const alerts = rows.slice(0, q.pageSize);
    const last = alerts.at(-1);
    const nextPageToken =
      rows.length > q.pageSize && last ? encodePageCursor({ customer: last.customerId, credit_type: last.creditType ?? "" }, filters) : "";
    return { alerts, nextPageToken };
  });
}

const alertPositionOf = (fields: Readonly<Record<string, unknown>>): AlertPosition | null =>
  typeof fields.customer === "string" && typeof fields.credit_type === "string"
    ? { customerId: fields.customer, creditType: fields.credit_type }
    : null;

/** Deletes an alert under its customer's lock, as setAlert sets one: a write in flight sees it or not, never half. */
export const deleteAlert = (ctx: BillingContext, target: AlertTarget): Promise<boolean> =>
  runWriteTransaction(ctx, (tx) => tx.runBatch(removeAlert(target.projectId, target.customerId, target.creditType), { commit: true }));
