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
  const outcomes = await recordCustomers(ctx, byCustomer);
  let recorded = 0;
  const failures: { customerPk: bigint; error: unknown }[] = [];
  for (const [customerPk, outcome] of outcomes) {
    if (typeof outcome === "number") recorded += outcome;
    else failures.push({ customerPk, error: outcome.error });
    if (outcome === 0 || typeof outcome !== "number") markBusy(busy, customerPk);
  }
  return { done: recorded, next: due.length < EXPIRY_BATCH_SIZE ? null : (due.at(-1)?.after ?? null), failures };
}

/** What a customer's records came to: how many were written (0: all left, the customer busy or recorded meanwhile), or the failure. */
type RecordOutcome = number | { readonly error: unknown };

/**
 * The records of every customer of a pass in one list. A list that fails unexpectedly is run
 * again one customer a list, so that one customer's failure leaves the others' records written.
 */
async function recordCustomers(
  ctx: BillingContext,
  byCustomer: ReadonlyMap<bigint, readonly CreditWrite[]>,
): Promise<Map<bigint, RecordOutcome>> {
  const writes = [...byCustomer.values()].flat();
  if (writes.length === 0) return new Map();
  const owners = [...byCustomer].flatMap(([customerPk, customerWrites]) => customerWrites.map(() => customerPk));
  try {
    const answers = await recordList(ctx, writes);
    const counts = new Map<bigint, number>([...byCustomer.keys()].map((pk) => [pk, 0]));
    answers.forEach((recorded, i) => {
      const owner = owners[i];
      if (recorded && owner !== undefined) counts.set(owner, (counts.get(owner) ?? 0) + 1);
    });
    return counts;
  } catch (error) {
    if (byCustomer.size === 1) return new Map([...byCustomer.keys()].map((pk) => [pk, { error }]));
    const outcomes = new Map<bigint, RecordOutcome>();
    for (const [customerPk, customerWrites] of byCustomer) {
      outcomes.set(
        customerPk,
        await recordList(ctx, customerWrites).then(
          (answers) => answers.filter(Boolean).length,
          (customerError: unknown) => ({ error: customerError }),
        ),
      );
    }
    return outcomes;
  }
}

/** One list of records: for each write whether it was recorded (false: left, its customer busy or recorded meanwhile). A failure is thrown. */
async function recordList(ctx: BillingContext, writes: readonly CreditWrite[]): Promise<boolean[]> {
  const settled = await runList(sweeperContext(ctx), writes, { atomic: false, skipLocked: true });
  return settled.map((answer) => {
    if (!answer.ok) throw answer.error;
    return answer.result !== null;
  });
}

/** One pass from the head of the expiry order; how many accounts it recorded. A failure is thrown, after the other customers' records. */
export async function recordExpiries(ctx: BillingContext): Promise<number> {
  const pass = await recordExpiriesFrom(ctx, null);
  const failed = pass.failures[0];
  if (failed) throw failed.error;
  return pass.done;
}
