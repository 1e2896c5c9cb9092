import { appendTo } from "../domain/collections.js";
import type { CreditWrite } from "../domain/plans/write-list.js";
import { listUnrecordedExpiries } from "../store/accounts-store.js";
import type { BillingContext } from "./context.js";
import { runList } from "./pipeline.js";
import { sweeperContext } from "./run-write.js";

/** Accounts examined per sweep. */
export const EXPIRY_BATCH_SIZE = 50;

/**
 * Writes, once per expired account, an EXPIRE entry for what was left available in it
 * (domain/plans/expiry-plan.ts), through the pipeline as the sweeper's writes: the due accounts of
 * one customer in one list (one transaction, one lock of the customer and one sum of its balance,
 * instead of one per account: 1,000 accounts expiring on a customer with 10,000 took 40 s so),
 * a busy customer skipped until the next sweep. Returns how many accounts were recorded.
 */
export async function recordExpiries(ctx: BillingContext): Promise<number> {
  const due = await listUnrecordedExpiries(ctx.database.db, ctx.now(), EXPIRY_BATCH_SIZE);
  const byCustomer = new Map<bigint, CreditWrite[]>();
  for (const { id, projectId, customerPk } of due) {
    appendTo(byCustomer, customerPk, { kind: "expire", account: { projectId, customerPk, accountId: id } });
  }
  let recorded = 0;
  for (const writes of byCustomer.values()) {
    const settled = await runList(sweeperContext(ctx), writes, { atomic: false, skipLocked: true });
    for (const answer of settled) {
      if (!answer.ok) throw answer.error;
      if (answer.result !== null) recorded++;
    }
  }
  return recorded;
}
