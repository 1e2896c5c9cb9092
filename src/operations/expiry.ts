import { appendTo } from "../domain/collections.js";
import type { CreditWrite } from "../domain/plans/write-list.js";
import { type AccountRecordKind, listUnrecordedAccounts } from "../store/accounts-store.js";
import type { DueCursor } from "../store/due-order.js";
import type { BillingContext } from "./context.js";
import { type GroupAnswers, runSweeperGroups } from "./sweeper-lists.js";

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
 * a pass in one list (one transaction, one lock of each customer and one sum of the balances,
 * instead of one per account: 1,000 accounts expiring on a customer with 10,000 took 40 s so, and
 * a transaction per customer made a burst over many customers cost one COMMIT each), a busy
 * customer skipped until the next sweep. Reads up to EXPIRY_BATCH_SIZE accounts after `after` and
 * not of the customers in `busy`, and adds to `busy` the customers it found busy or failing: a
 * sweep's next pass goes on past them.
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
  const customers = [...byCustomer];
  const outcomes = await runSweeperGroups(
    ctx,
    customers.map(([customerPk, writes]) => ({ customerPk, writes })),
  );
  let recorded = 0;
  const failures: { customerPk: bigint; error: unknown }[] = [];
  outcomes.forEach((outcome, i) => {
    const customerPk = customers[i]?.[0];
    if (customerPk === undefined) return;
    const records = customerRecordsOf(outcome);
    if ("error" in records) failures.push({ customerPk, error: records.error });
    else recorded += records.done;
    if (!("done" in records) || records.done === 0) markBusy(busy, customerPk);
  });
  return { done: recorded, next: due.length < EXPIRY_BATCH_SIZE ? null : (due.at(-1)?.after ?? null), failures };
}

/**
 * How many of a customer's records a pass wrote (0: all left, the customer busy or recorded
 * meanwhile), or why they failed: its list failed, or a record was refused in its plan.
 */
function customerRecordsOf(outcome: GroupAnswers): { readonly done: number } | { readonly error: unknown } {
  if (!outcome.ok) return { error: outcome.error };
  for (const answer of outcome.answers) if (!answer.ok) return { error: answer.error };
  return { done: outcome.answers.filter((answer) => answer.ok && answer.result !== null).length };
}

/** One pass from the head of the expiry order; how many accounts it recorded. A failure is thrown, after the other customers' records. */
export async function recordExpiries(ctx: BillingContext): Promise<number> {
  const pass = await recordExpiriesFrom(ctx, null);
  const failed = pass.failures[0];
  if (failed) throw failed.error;
  return pass.done;
}
