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
  readonly failures: ReadonlyArray<{ readonly customerPk: bigint; readonly error: unknown }>;
}

/**
 * Customers a sweep leaves out once found busy (or failing): past this many it stops adding
 * (their rows are then read and skipped one by one, as before).
 */
export const SWEEP_BUSY_CUSTOMERS_MAX = 1_000;

/** Adds a customer to a sweep's busy ones, within SWEEP_BUSY_CUSTOMERS_MAX. */
export function markBusy(busy: Set<bigint>, customerPk: bigint): void {
  if (busy.size < SWEEP_BUSY_CUSTOMERS_MAX) busy.add(customerPk);
}

/**
 * Writes, once per expired account, an EXPIRE entry for what was left available in it
 * (domain/plans/expiry-plan.ts), through the pipeline as the sweeper's writes: the due accounts of
 * one customer in one list (one transaction, one lock of the customer and one sum of its balance,
 * instead of one per account: 1,000 accounts expiring on a customer with 10,000 took 40 s so),
 * a busy customer skipped until the next sweep. Reads up to EXPIRY_BATCH_SIZE accounts after
 * `after` and not of the customers in `busy`, and adds to `busy` the customers it found busy or
 * failing: a sweep's next pass goes on past them.
 */
export async function recordExpiriesFrom(ctx: BillingContext, after: DueCursor | null, busy: Set<bigint> = new Set()): Promise<SweepPass> {
  const due = await listUnrecordedExpiries(ctx.database.db, ctx.now(), EXPIRY_BATCH_SIZE, after, busy);
  const byCustomer = new Map<bigint, CreditWrite[]>();
  for (const { id, projectId, customerPk } of due) {
    appendTo(byCustomer, customerPk, { kind: "expire", account: { projectId, customerPk, accountId: id } });
  }
  let recorded = 0;
  const failures: { customerPk: bigint; error: unknown }[] = [];
  for (const [customerPk, writes] of byCustomer) {
    try {
      const settled = await runList(sweeperContext(ctx), writes, { atomic: false, skipLocked: true });
      let skipped = 0;
      for (const answer of settled) {
        if (!answer.ok) throw answer.error;
        if (answer.result === null) skipped++;
        else recorded++;
      }
      if (skipped === settled.length) markBusy(busy, customerPk);
    } catch (error) {
      failures.push({ customerPk, error });
      markBusy(busy, customerPk);
    }
  }
  return { done: recorded, next: due.length < EXPIRY_BATCH_SIZE ? null : (due.at(-1)?.after ?? null), failures };
}

/** One pass from the head of the expiry order; how many accounts it recorded. A failure is thrown, after the other customers' records. */
export async function recordExpiries(ctx: BillingContext): Promise<number> {
  const pass = await recordExpiriesFrom(ctx, null);
  const failed = pass.failures[0];
  if (failed) throw failed.error;
  return pass.done;
}
