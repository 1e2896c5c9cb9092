import { appendTo } from "../domain/collections.js";
import type { CreditWrite } from "../domain/plans/write-list.js";
import { type AccountRecordKind, listUnrecordedAccounts } from "../store/accounts-store.js";
import type { DueCursor } from "../store/due-order.js";
import type { BillingContext } from "./context.js";
import { runList } from "./pipeline.js";
import { sweeperContext } from "./run-write.js";

/** Accounts examined per pass (expiries, and starts). */
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
export const recordExpiriesFrom = (ctx: BillingContext, after: DueCursor | null, busy: Set<bigint> = new Set()): Promise<SweepPass> =>
  recordAccountsFrom(ctx, "expiry", after, busy);

/**
 * Records, once per account whose start has come (a deposit made it for later), that the
 * customer's balance alerts were decided again with it: the credits count in `available` from
 * their start with no write, so a `balance.recovered` they bring comes from this record, not from
 * the customer's next write. The same passes as recordExpiriesFrom.
 */
export const recordStartsFrom = (ctx: BillingContext, after: DueCursor | null, busy: Set<bigint> = new Set()): Promise<SweepPass> =>
  recordAccountsFrom(ctx, "start", after, busy);

async function recordAccountsFrom(
  ctx: BillingContext,
  kind: AccountRecordKind,
  after: DueCursor | null,
  busy: Set<bigint>,
): Promise<SweepPass> {
  const due = await listUnrecordedAccounts(ctx.database.db, kind, ctx.now(), EXPIRY_BATCH_SIZE, after, busy);
  const byCustomer = new Map<bigint, CreditWrite[]>();
  for (const { id, projectId, customerPk } of due) {
    appendTo(byCustomer, customerPk, { kind: kind === "expiry" ? "expire" : "start", account: { projectId, customerPk, accountId: id } });
  }
  let recorded = 0;
  const failures: { customerPk: bigint; error: unknown }[] = [];
  for (const [customerPk, writes] of byCustomer) {
    try {
      const done = await recordCustomer(ctx, writes);
      recorded += done;
      if (done === 0) markBusy(busy, customerPk);
    } catch (error) {
      failures.push({ customerPk, error });
      markBusy(busy, customerPk);
    }
  }
  return { done: recorded, next: due.length < EXPIRY_BATCH_SIZE ? null : (due.at(-1)?.after ?? null), failures };
}

/** One customer's records in one list: how many it wrote (0: all left, its customer busy or recorded meanwhile). A failure is thrown. */
async function recordCustomer(ctx: BillingContext, writes: readonly CreditWrite[]): Promise<number> {
  const settled = await runList(sweeperContext(ctx), writes, { atomic: false, skipLocked: true });
  let recorded = 0;
  for (const answer of settled) {
    if (!answer.ok) throw answer.error;
    if (answer.result !== null) recorded++;
  }
  return recorded;
}

/** One pass from the head of the expiry order; how many accounts it recorded. A failure is thrown, after the other customers' records. */
export async function recordExpiries(ctx: BillingContext): Promise<number> {
  const pass = await recordExpiriesFrom(ctx, null);
  const failed = pass.failures[0];
  if (failed) throw failed.error;
  return pass.done;
}
