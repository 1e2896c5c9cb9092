import { BALANCE_POINTS_MAX } from "../domain/limits.js";
import { BillingError } from "../errors/billing-error.js";
import { type BalancePoint, balanceHistory } from "../store/balance-history-store.js";
import { findCustomer } from "../store/customers-store.js";
import { runQuery } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";

export type { BalancePoint };

export interface BalanceHistory {
  /** One point per ledger entry in the range, oldest first. */
  readonly points: BalancePoint[];
  /** The range held more entries than BALANCE_POINTS_MAX: the points are its latest ones. */
  readonly truncated: boolean;
}

/**
 * A customer's available and frozen balance after each ledger entry made in [fromMs, toMs);
 * customer_not_found when the project has no such customer.
 */
export function readBalanceHistory(
  ctx: BillingContext,
  input: { projectId: bigint; customerId: string; fromMs: number; toMs: number },
): Promise<BalanceHistory> {
  return runQuery(async () => {
    const { db } = ctx.database;
    const customer = await findCustomer(db, input.projectId, input.customerId);
    if (!customer) throw new BillingError("customer_not_found", undefined, { customer_id: input.customerId });
    const points = await balanceHistory(
      db,
      { projectId: input.projectId, customerPk: customer.pk },
      input.fromMs,
      input.toMs,
      BALANCE_POINTS_MAX + 1,
    );
    return { points: points.slice(-BALANCE_POINTS_MAX), truncated: points.length > BALANCE_POINTS_MAX };
  });
}
