import type { EventType, NewEvent } from "../domain/events.js";
import { withWrittenIds } from "../domain/plans/deposit-plan.js";
import { planList } from "../domain/plans/list-plan.js";
import type { WriteOutcome } from "../domain/plans/outcome.js";
import {
  type CreditWrite,
  customerRefOf,
  customersMissingAlerts,
  holdRefOf,
  type ListState,
  type PlannedList,
  type WritePlan,
} from "../domain/plans/write-list.js";
import { customerKey, holdKey } from "../domain/customer-ref.js";
import type { DepositResult } from "../domain/results.js";
import { BillingError, CallNotRun } from "../errors/billing-error.js";
import { applyList, type Outbox, type WrittenIds } from "../store/list-apply.js";
import {
  busyWritesSql,
  type LockWaitBound,
  lockWaitRestoredBatch,
  prefetchAlerts,
  prefetchList,
  prefetchMore,
  prefetchSkipLocked,
} from "../store/list-prefetch.js";
import { GROUP_COMMIT_LOCK_WAIT_S } from "../domain/limits.js";
import { appendEventsSql, appendEventWithDataSql, newEventId } from "../store/event-rows.js";
import type { SQL } from "../store/sql.js";
import { type Batch, mapBatch, runTransaction, sequence, type Tx, WorkGivenUp, writesOnly } from "../store/run-transaction.js";
import { rethrowGuardFailure } from "../store/row-count-guard.js";
import { isLockNotAvailable, isRowCountGuardFailure } from "../store/sql-errors.js";
import type { BillingContext } from "./context.js";
import { replayOf } from "./idempotency.js";

/** One write's answer in a list: its response (null: the sweeper left it for later), or the error it alone would have got. */
export type Settled = { readonly ok: true; readonly result: unknown } | { readonly ok: false; readonly error: unknown };

/** An atomic list refused: the index of the first write that failed and its error; nothing was written. */
export class AtomicFailure extends Error {
  constructor(
    readonly index: number,
    readonly error: BillingError,
  ) {
    super(`write ${index} of an atomic list failed: ${error.code}`);
  }
}

export interface ListOptions {
  /** All or none: the first refusal rolls everything back (AtomicFailure). Otherwise each write stands alone. */
  readonly atomic: boolean;
  /** The sweeper's writes: nothing is waited for (SKIP LOCKED); a busy row leaves the write for a later pass. */
  readonly skipLocked?: boolean;
  /**
   * Group commit's lists (a lone call, a customer's group, side by side): a customer that another
   * transaction holds longer than GROUP_COMMIT_LOCK_WAIT_S does not keep the list, nor the
   * instance's place it runs in, waiting. Its writes are set aside, answered HeldElsewhere
   * without running, for the caller to run apart; the list goes on without them, in a
   * transaction of its own.
   */
  readonly setAsideHeld?: boolean;
  /**
   * With setAsideHeld: customers (pks) that the caller already knows another transaction holds
   * (group commit's calls set aside for them still wait). The writes that lock one are set aside
   * before the list waits on anything, instead of after each list's bounded wait has run out.
   */
  readonly heldKnown?: ReadonlySet<bigint>;
  /** With setAsideHeld: told when the list's bounded wait for its customers ran out. */
  readonly onHeldWait?: () => void;
}

/**
 * What a write set aside waits for: a committed customer another transaction holds (by pk), or
 * what it names that is not committed yet (a customer being created, else its hold).
 */
export type WaitsFor = { readonly kind: "customer"; readonly pk: bigint } | { readonly kind: "uncommitted"; readonly name: string };

/** One key per thing waited for: the writes set aside with one key run one after another. */
export const waitsForKey = (w: WaitsFor): string => (w.kind === "customer" ? `pk:${w.pk}` : w.name);

/** A write set aside from its list because another transaction holds its customer (ListOptions.setAsideHeld): not run. */
export class HeldElsewhere extends Error {
  /** What the write waits for, so that the caller runs such writes one after another. */
  constructor(readonly waitsFor: WaitsFor) {
    super("the write's customer is locked by another transaction; run it alone");
  }
}

/** A list's bounded wait for its customers ran out: its transaction is given up, to run again with the held ones set aside. */
class CustomersHeld extends WorkGivenUp {
  constructor() {
    super("a customer of the list is held by another transaction");
  }
}

/**
 * What a group-commit list sets aside before its prefetch: on its first attempt nothing, or the
 * writes of the customers known held (ListOptions.heldKnown); then also the writes of customers
 * another transaction holds, then also those of customers not committed yet (another transaction
 * may be creating them). The known ones stay aside in every attempt.
 */
type SetAside = "nothing" | "known" | "held" | "held or new";

/**
 * The one write pipeline. Every write, alone (a list of one) or with others (a customer's group,
 * side by side, a Batch), runs as: prefetch (store: one round trip that locks every customer in
 * ascending primary key, then reads what the list decides from) → plan (domain/plans/list-plan.ts:
 * pure, each write on the state the earlier ones leave; a refusal is a result) → apply (store:
 * one merged write set) and COMMIT, in a second round trip. A plan that needs more state (many
 * accounts, an overage) costs one more round trip; a write that depends on an earlier write of the
 * list (the same key, a hold the list creates, the id of a new account) starts a new segment, whose
 * prefetch travels with the previous segment's writes.
 */
export async function runList(ctx: BillingContext, writes: readonly CreditWrite[], options: ListOptions): Promise<Settled[]> {
  const bound = options.setAsideHeld ? lockWaitBoundOf(ctx) : undefined;
  const known = options.heldKnown ?? new Set<bigint>();
  const attempt = (setAside: SetAside) =>
    runWriteTransaction(ctx, async (tx) => {
      const nowMs = ctx.now();
      const prefetch = (rest: readonly CreditWrite[]) =>
        options.skipLocked ? prefetchSkipLocked(rest, nowMs) : prefetchList(rest, nowMs, ctx.alertHints?.likely);
      const aside = setAside === "nothing" ? new Map<number, WaitsFor>() : await heldBack(tx, writes, setAside, known);
      const kept = aside.size === 0 ? writes : writes.filter((_, i) => !aside.has(i));
      if (kept.length === 0) return { answers: withSetAside(writes, kept, [], aside), applied: false };
      const read = bound
        ? await boundedPrefetch(tx, prefetchList(kept, nowMs, ctx.alertHints?.likely, { lockWait: bound }), bound)
        : await tx.runBatch(prefetch(kept));
      const { answers, applied } = await planAndApply(ctx, tx, kept, read, prefetch, { atomic: options.atomic, nowMs });
      return { answers: withSetAside(writes, kept, answers, aside), applied };
    });
  // Each attempt that meets a held customer sets more aside: the last can meet none (its customers
  // are locked before its prefetch, and new ones are left out).
  const again = (setAside: SetAside) => (error: unknown) => {
    if (!(error instanceof CustomersHeld)) throw error;
    options.onHeldWait?.();
    return attempt(setAside);
  };
  const { answers, applied } = await attempt(known.size > 0 ? "known" : "nothing")
    .catch(again("held"))
    .catch(again("held or new"));
  // The local stamper orders the new events at once (the others find them within their poll).
  if (applied) ctx.events?.notifyCommitted();
  return answers;
}

/** A group-commit list's wait for its customers: GROUP_COMMIT_LOCK_WAIT_S, unless the connections' own is no longer. */
function lockWaitBoundOf(ctx: BillingContext): LockWaitBound | undefined {
  const restoreS = ctx.database.lockWaitTimeoutS;
  return restoreS > GROUP_COMMIT_LOCK_WAIT_S ? { boundS: GROUP_COMMIT_LOCK_WAIT_S, restoreS } : undefined;
}

/**
 * The prefetch with its customers' lock wait bounded. When the bound runs out (or anything fails
 * the batch before its own restoring statement), the connection's lock wait is set back first;
 * a wait that ran out gives the transaction up (CustomersHeld), so that the list runs again in a
 * fresh one with the held customers' writes set aside. A fresh one, because a server started with
 * innodb_rollback_on_timeout has already rolled this one back.
 */
async function boundedPrefetch(tx: Tx, prefetch: Batch<ListState>, bound: LockWaitBound): Promise<ListState> {
  // Until the lock wait is set back, the connection is closed rather than pooled if anything fails.
  tx.sessionChanged = true;
  try {
    const read = await tx.runBatch(prefetch);
    tx.sessionChanged = false;
    return read;
  } catch (error) {
    try {
      await tx.runBatch(lockWaitRestoredBatch(bound.restoreS));
    } catch {
      // The connection is closed, not pooled (sessionChanged stays): the first failure is the answer.
      throw error;
    }
    tx.sessionChanged = false;
    throw isLockNotAvailable(error) ? new CustomersHeld() : error;
  }
}

/**
 * The writes to set aside, by index, each with what it waits for: those locking a customer known
 * held (`known`) or, after the list's wait ran out ("held", "held or new"), one that another
 * transaction holds (its pk), and with "held or new" those naming a customer with no committed
 * row (its name). Every attempt keeps the known ones aside: a customer known held may be free by
 * a retry, and running its write then would overtake its calls set aside before. The list's other
 * customers are locked, without waiting, in the same round trip (busyWritesSql).
 */
async function heldBack(
  tx: Tx,
  writes: readonly CreditWrite[],
  setAside: Exclude<SetAside, "nothing">,
  known: ReadonlySet<bigint>,
): Promise<Map<number, WaitsFor>> {
  const probe = busyWritesSql(writes, { known, lockOthers: setAside !== "known" });
  const aside = new Map<number, WaitsFor>();
  if (probe === null) return aside;
  const owners = await tx.runBatch(probe);
  for (const [index, pk] of owners.held) aside.set(index, { kind: "customer", pk });
  if (setAside === "held or new") {
    for (const index of owners.unresolved) if (!aside.has(index)) aside.set(index, unresolvedNameOf(writes[index], index));
  }
  return aside;
}

/** What a write naming no committed customer waits for: the customer it names, else its hold. */
function unresolvedNameOf(write: CreditWrite | undefined, index: number): WaitsFor {
  const ref = write ? customerRefOf(write) : null;
  const hold = write ? holdRefOf(write) : null;
  const name = ref ? `new:${customerKey(ref)}` : hold ? `hold:${holdKey(hold)}` : `write:${index}`;
  return { kind: "uncommitted", name };
}

/** The list's segments planned and applied one after another, on the prefetched state; COMMIT with the last one's writes. */
async function planAndApply(
  ctx: BillingContext,
  tx: Tx,
  writes: readonly CreditWrite[],
  read: ListState,
  prefetch: (rest: readonly CreditWrite[]) => Batch<ListState>,
  { atomic, nowMs }: { atomic: boolean; nowMs: number },
): Promise<{ answers: Settled[]; applied: boolean }> {
  const withAlerts = (state: ListState) => completeAlerts(ctx, tx, state, nowMs);
  const answers: Settled[] = [];
  let state = await withAlerts(read);
  let applied = false;
  for (let done = 0; done < writes.length; ) {
    const rest = writes.slice(done);
    const planned = await planSegment(tx, state, rest, nowMs);
    const { plans } = planned;
    if (atomic) throwFirstRefusal(plans, done);
    applied ||= plans.some(isApplied);
    const next = writes.slice(done + plans.length);
    const apply = applyList(state, rest, planned, nowMs, outboxOf(ctx));
    const last = next.length === 0;
    const [ids, nextState] = await runApply(tx, rest, apply, last ? null : prefetch(next), last && applied);
    answers.push(...plans.map((p, i) => answerOf(p, ids.get(i))));
    if (nextState) state = await withAlerts(nextState);
    done += plans.length;
  }
  return { answers, applied };
}

/**
 * The answers of `kept` (`writes` without the indexes of `aside`, in order) in `writes`' places;
 * the writes set aside answered HeldElsewhere with what they wait for.
 */
function withSetAside(
  writes: readonly CreditWrite[],
  kept: readonly CreditWrite[],
  answers: readonly Settled[],
  aside: ReadonlyMap<number, WaitsFor>,
): Settled[] {
  if (kept === writes) return [...answers];
  let next = 0;
  return writes.map((_, i): Settled => {
    const waitsFor = aside.get(i);
    if (waitsFor !== undefined) return { ok: false, error: new HeldElsewhere(waitsFor) };
    const answer = answers[next++];
    if (!answer) throw new Error("a kept write has no answer");
    return answer;
  });
}

/**
 * The state with the alerts of every customer whose flag (read with its lock) says it has some:
 * read in one more round trip when the prefetch did not guess them (AlertHints).
 */
async function completeAlerts(ctx: BillingContext, tx: Tx, state: ListState, nowMs: number): Promise<ListState> {
  ctx.alertHints?.learn(state);
  const missing = customersMissingAlerts(state);
  return missing.length === 0 ? state : tx.runBatch(prefetchAlerts(state, missing, nowMs));
}

/** Plans a segment to its end: reads more while the plan asks for it. */
async function planSegment(tx: Tx, state: ListState, writes: readonly CreditWrite[], nowMs: number): Promise<PlannedList> {
  let current = state;
  for (;;) {
    const plan = planList(current, writes, nowMs);
    if (plan.kind === "planned") {
      if (plan.plans.length === 0) throw new Error("a segment planned no write");
      return plan;
    }
    current = await tx.runBatch(prefetchMore(current, plan.customerPks, nowMs));
  }
}

/** The segment's writes (with the next segment's prefetch, or the COMMIT) in one round trip. */
async function runApply(
  tx: Tx,
  writes: readonly CreditWrite[],
  apply: Batch<WrittenIds>,
  next: Batch<ListState> | null,
  commit: boolean,
): Promise<[WrittenIds, ListState | null]> {
  try {
    if (next) return await tx.runBatch(sequence(apply, next));
    if (apply.statements.length === 0 && !commit) return [new Map(), null];
    return [await tx.runBatch(apply, { commit }), null];
  } catch (error) {
    // A guarded update that missed: the rows are not what was read under lock. Alone, a
    // settlement says so with its own code; in a list the caller runs each write alone.
    const only = writes.length === 1 ? writes[0] : undefined;
    if (isRowCountGuardFailure(error) && (only?.kind === "consume" || only?.kind === "unfreeze")) {
      throw new BillingError("freeze_records_inconsistent", undefined, {}, { cause: error });
    }
    throw error;
  }
}

/** The outbox a write's events go to: this deployment's, unless the bench switched it off. */
const outboxOf = (ctx: BillingContext): Outbox | null =>
  ctx.events && ctx.outbox !== false ? { deploymentId: ctx.events.deploymentId } : null;

const isApplied = (p: WritePlan) => p.kind !== "replay" && p.kind !== "refused" && p.kind !== "skipped";

function throwFirstRefusal(plans: readonly WritePlan[], offset: number): void {
  const index = plans.findIndex((p) => p.kind === "refused");
  const refused = plans[index];
  if (refused?.kind === "refused") throw new AtomicFailure(offset + index, refused.error);
}

/** The caller's answer: the planned response (a deposit's with the ids it wrote), the stored one flagged as a replay, the refusal. */
function answerOf(plan: WritePlan, ids: { accountId: bigint; ledgerEntryId: bigint } | undefined): Settled {
  switch (plan.kind) {
    case "deposit":
      if (!ids) throw new Error("a deposit's ids were not read back");
      return { ok: true, result: withWrittenIds(plan.result as DepositResult, ids) };
    case "spend":
    case "settle":
    case "refund":
    case "void":
      return { ok: true, result: plan.result };
    case "expire":
    case "start":
      return { ok: true, result: true };
    case "replay":
      return { ok: true, result: replayOf(plan.stored) };
    case "refused":
      return { ok: false, error: plan.error };
    case "skipped":
      return { ok: true, result: null };
  }
}

/** A call whose deadline passed (or whose client went away) before its transaction started: it is not run. */
export const deadlinePassed = () => new CallNotRun();

/**
 * The transaction of every write (lists, programs, alert settings): through the context's gate
 * when it has one, not begun once the call's deadline has passed or its client has gone
 * (CallNotRun), and retried as the context says while they have not.
 */
export function runWriteTransaction<T>(ctx: BillingContext, work: (tx: Tx) => Promise<T>): Promise<T> {
  const run = () =>
    runTransaction(
      ctx.database,
      async (tx) => {
        if (ctx.signal?.aborted) throw deadlinePassed();
        return work(tx);
      },
      ctx.retries,
      ctx.signal,
    );
  return ctx.transactionGate ? ctx.transactionGate.run(run, ctx.signal, ctx.tenant) : run();
}

/** A list's answers run each alone, in order: the fallback when their shared transaction failed. */
export async function runEachAlone(ctx: BillingContext, writes: readonly CreditWrite[]): Promise<Settled[]> {
  const settled: Settled[] = [];
  for (const write of writes) {
    try {
      settled.push(...(await runList(ctx, [write], { atomic: false })));
    } catch (error) {
      settled.push({ ok: false, error });
    }
  }
  return settled;
}

/**
 * One write that no list shares (slots, entitlements) as a program of the pipeline: the same
 * prefetch → plan → apply as runList, for one write kind. `prefetch` is one round trip that locks
 * the customer first, then the rows below it, then reads the stored outcome under those locks;
 * `plan` is pure and returns the outcome or a refusal; `apply` is the write set, sent with COMMIT.
 */
export interface WriteProgram<S, C, R> {
  readonly prefetch: (nowMs: number) => Batch<S>;
  readonly plan: (state: S, nowMs: number) => WriteOutcome<C, R>;
  readonly apply: (changes: C, result: R, nowMs: number) => Batch<R>;
  /** The feed event of the applied write (slot and entitlement events carry no entries, their facts in `data`). */
  readonly event: (result: R, changes: C) => ProgramEvent;
}

/** What a slot or entitlement write's event says. */
export interface ProgramEvent {
  readonly type: EventType;
  readonly projectId: bigint;
  readonly customerId: string;
  readonly data: Readonly<Record<string, string>>;
  /** Fields of `data` the database gives in the write's own transaction (a claim's new holding id): their values here are placeholders. */
  readonly dataFromDatabase?: Readonly<Record<string, SQL>>;
}

/** The apply of a program with its outbox row in the same round trip (none when the outbox is off). */
function withEvent<R>(ctx: BillingContext, apply: Batch<R>, event: ProgramEvent, nowMs: number): Batch<R> {
  const outbox = outboxOf(ctx);
  if (outbox === null) return apply;
  const row: NewEvent = {
    eventId: newEventId(outbox.deploymentId),
    projectId: event.projectId,
    customerId: event.customerId,
    type: event.type,
    transactionId: null,
    payload: { entries: [], balanceAfter: null, data: event.data },
    nowMs,
  };
  const insert = event.dataFromDatabase ? appendEventWithDataSql(row, event.dataFromDatabase) : appendEventsSql([row]);
  return mapBatch(sequence(apply, writesOnly(insert)), ([result]) => result);
}

/**
 * Runs a program in one transaction of two round trips (one when nothing is written: a replay, an
 * answer or a refusal rolls back whatever its prefetch created). A guarded update that missed
 * means the rows are not what was read under lock: nothing is committed, server_error.
 */
export async function runProgram<S, C, R extends object>(ctx: BillingContext, program: WriteProgram<S, C, R>): Promise<R> {
  let written = false;
  const answer = await runWriteTransaction(ctx, async (tx) => {
    const nowMs = ctx.now();
    const outcome = program.plan(await tx.runBatch(program.prefetch(nowMs)), nowMs);
    switch (outcome.kind) {
      case "refused":
        throw outcome.error;
      case "replay":
        return replayOf<R & { isIdempotentReplay: boolean }>(outcome.stored);
      case "answer":
        return outcome.result;
      case "apply": {
        const apply = withEvent(
          ctx,
          program.apply(outcome.changes, outcome.result, nowMs),
          program.event(outcome.result, outcome.changes),
          nowMs,
        );
        const result = await tx.runBatch(apply, { commit: true }).catch(rethrowGuardFailure);
        written = true;
        return result;
      }
    }
  });
  if (written) ctx.events?.notifyCommitted();
  return answer;
}
