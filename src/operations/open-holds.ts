import { OPEN_HOLDS_SHOWN_MAX } from "../domain/limits.js";
import type { AutoAction } from "../domain/types.js";
import { BillingError } from "../errors/billing-error.js";
import { findCustomer } from "../store/customers-store.js";
import { runQuery } from "../store/run-transaction.js";
import { listOpenHolds as selectOpenHolds } from "../store/transactions-store.js";
import type { BillingContext } from "./context.js";

/** A Freeze not yet settled, with its deadline when it settles by itself. */
export interface OpenHold {
  readonly transactionId: string;
  readonly amount: bigint;
  readonly creditTypes: readonly string[];
  readonly description: string;
  readonly createdAtMs: number;
  readonly autoAction: AutoAction | null;
  readonly autoAtMs: number | null;
}

/** A customer's open holds, newest first (at most OPEN_HOLDS_SHOWN_MAX), and whether it has more; customer_not_found when unknown. */
export function listOpenHolds(
  ctx: BillingContext,
  input: { projectId: bigint; customerId: string },
): Promise<{ holds: OpenHold[]; more: boolean }> {
  return runQuery(async () => {
    const { db } = ctx.database;
    const customer = await findCustomer(db, input.projectId, input.customerId);
    if (!customer) throw new BillingError("customer_not_found", undefined, { customer_id: input.customerId });
    // One more than shown: whether the list is cut, without counting every hold.
    const rows = await selectOpenHolds(db, input.projectId, customer.pk, OPEN_HOLDS_SHOWN_MAX + 1);
    const holds = rows.slice(0, OPEN_HOLDS_SHOWN_MAX).map((h) => ({
      transactionId: h.transactionId,
      amount: h.amount,
      creditTypes: h.creditTypes,
      description: h.description,
      createdAtMs: h.createdAtMs,
      autoAction: h.autoAction,
      autoAtMs: h.autoAtMs,
    }));
    return { holds, more: rows.length > OPEN_HOLDS_SHOWN_MAX };
  });
}
