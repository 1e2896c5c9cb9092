import { type BalanceAlert, availableFor, stateFor } from "../domain/balance-alerts.js";
import { BillingError } from "../errors/billing-error.js";
import { removeAlert, listAlerts as listAlertRows, lockCustomerAvailable, upsertAlert } from "../store/alerts-store.js";
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
    const state = stateFor(input.threshold, availableFor(locked.available, input.creditType));
    return tx.runBatch(upsertAlert({ ...input, customerPk: locked.customerPk, state, nowMs }), { commit: true });
  });
}

export const listAlerts = (ctx: BillingContext, projectId: bigint, customerId: string | null): Promise<BalanceAlert[]> =>
  runQuery(() => listAlertRows(ctx.database.pool, projectId, customerId));

/** Deletes an alert under its customer's lock, as setAlert sets one: a write in flight sees it or not, never half. */
export const deleteAlert = (ctx: BillingContext, target: AlertTarget): Promise<boolean> =>
  runWriteTransaction(ctx, (tx) => tx.runBatch(removeAlert(target.projectId, target.customerId, target.creditType), { commit: true }));
