import { appendTo } from "../domain/collections.js";
import type { CreditWrite } from "../domain/plans/write-list.js";
import { listUnrecordedExpiries } from "../store/accounts-store.js";
import type { DueCursor } from "../store/due-order.js";
import type { BillingContext } from "./context.js";
import { runList } from "./pipeline.js";
import { sweeperContext } from "./run-write.js";

/** Accounts examined per sweep. */
export const EXPIRY_BATCH_SIZE = 50;

/** One pass of a sweeper's list: how much it did, and where the next pass goes on (null: it read the list's end). */
export interface SweepPass {
  readonly done: number;
  readonly next: DueCursor | null;
  /** Customers whose writes failed unexpectedly: left for the next sweep, the others went on. */
  readonly failures: readonly unknown[];
}

/**
 * Writes, once per expired account, an EXPIRE entry for what was left available in it
 * (domain/plans/expiry-plan.ts), through the pipeline as the sweeper's writes: the due accounts of
 * one customer in one list (one transaction, one lock of the customer and one sum of its balance,
 * instead of one per account: 1,000 accounts expiring on a customer with 10,000 took 40 s so),
 * a busy customer skipped until the next sweep. Reads up to EXPIRY_BATCH_SIZE accounts after
 * `after`: a sweep's next pass goes on past the ones it had to leave.
 */
export async function recordExpiriesFrom(ctx: BillingContext, after: DueCursor | null): Promise<SweepPass> {
  const due = await listUnrecordedExpiries(ctx.database.db, ctx.now(), EXPIRY_BATCH_SIZE, after);
  const byCustomer = new Map<bigint, CreditWrite[]>();
  for (const { id, projectId, customerPk } of due) {
    appendTo(byCustomer, customerPk, { kind: "expire", account: { projectId, customerPk, accountId: id } });
  }
  let recorded = 0;
  const failures: unknown[] = [];
  for (const writes of byCustomer.values()) {
    try {
      const settled = await runList(sweeperContext(ctx), writes, { atomic: false, skipLocked: true });
      for (const answer of settled) {
        if (!answer.ok) throw answer.error;
        if (answer.result !== null) recorded++;
      }
    } catch (error) {
      failures.push(error);
    }
  }
  return { done: recorded, next: due.length < EXPIRY_BATCH_SIZE ? null : (due.at(-1)?.after ?? null), failures };
}

/** One pass from the head of the expiry order; how many accounts it recorded. A failure is thrown, after the other customers' records. */
export async function recordExpiries(ctx: BillingContext): Promise<number> {
  const pass = await recordExpiriesFrom(ctx, null);
  if (pass.failures.length > 0) throw pass.failures[0];
  return pass.done;
}
