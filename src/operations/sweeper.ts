import type { Logger } from "pino";
import { BillingError } from "../errors/billing-error.js";
import type { ErrorCode } from "../errors/catalog.js";
import type { DueCursor } from "../store/due-order.js";
import { type DueHold, listDueHolds, parseAutoAction, postponeAutoSettlement } from "../store/transactions-store.js";
import { ALERT_FLAG_REPAIR_INTERVAL_MS, repairAlertFlags } from "./alert-flags.js";
import type { BillingContext } from "./context.js";
import { markBusy, recordExpiriesFrom, recordStartsFrom, SWEEP_BUSY_CUSTOMERS_MAX, type SweepPass } from "./expiry.js";
import { pruneExpiredEvents, type EventRetention } from "./events/retention.js";
import { automaticSettlement } from "./settle.js";
import type { CreditWrite } from "../domain/plans/write-list.js";
import type { Settled } from "./pipeline.js";
import { runSweeperGroups } from "./sweeper-lists.js";
import { type BusyHold, isReplay, OverdueSettlements } from "./overdue-settlements.js";

/** Holds settled per sweep; small batches keep each pass short and fair between instances. */
export const SWEEP_BATCH_SIZE = 50;
/** A hold whose settlement failed is tried again after this long, behind the others. */
export const SWEEP_RETRY_DELAY_MS = 60_000;

/** What settle() answers for a hold that a caller consumed or unfroze after the due list was read. */
const SETTLED_MEANWHILE: ReadonlySet<ErrorCode> = new Set([
  "no_consumable_freeze_records",
  "freeze_records_already_consumed",
  "no_unfreezable_records",
  "freeze_auto_unfrozen",
]);

/**
 * Settles holds whose auto-settlement deadline passed. Safe with many instances: a pass's holds
 * are settled in one list (one transaction) that re-checks each hold's state under its locks. It
 * never waits: every lock it takes is SKIP LOCKED, and a hold whose row, customer or accounts are
 * busy is left for the next sweep. Reads up to SWEEP_BATCH_SIZE holds after `after` and not of the
 * customers in `busy`, and adds to `busy` the customers it found busy: a sweep's next pass goes on
 * past them, so that the due holds of one busy customer do not keep every other customer's frozen
 * (50 of them did, for as long as that customer was held). With `overdue`, the busy ones overdue
 * are sent behind their customer's calls on this instance, not waited for (OverdueSettlements).
 */
export async function sweepDueHoldsFrom(
  ctx: BillingContext,
  log: Logger,
  after: DueCursor | null,
  busy: Set<bigint> = new Set(),
  options: { readonly overdue?: OverdueSettlements | undefined; readonly observer?: SweepObserver | undefined } = {},
): Promise<SweepPass> {
  const due = await listDueHolds(ctx.database.db, ctx.now(), SWEEP_BATCH_SIZE, after, busy);
  const { outcomes, busyHolds } = await settleDueHolds(ctx, log, due);
  await options.overdue?.send(busyHolds);
  let settled = 0;
  const nowMs = ctx.now();
  due.forEach((hold, i) => {
    if (outcomes[i] === "busy") markBusy(busy, hold.customerPk);
    else if (outcomes[i] === "settled") {
      settled++;
      options.observer?.onSettled?.(nowMs - hold.after.atMs, "pass");
    }
  });
  return { done: settled, next: due.length < SWEEP_BATCH_SIZE ? null : (due.at(-1)?.after ?? null), failures: [] };
}

type HoldOutcome = "settled" | "busy" | "not settled";

/** What the sweeper reports (metrics). */
export interface SweepObserver {
  /** A due hold settled by this instance, this long after its deadline: in a pass, or sent in line (OverdueSettlements). */
  onSettled?(latenessMs: number, via: "pass" | "in_line"): void;
}

/**
 * The due holds settled as they asked, in one list (runSweeperGroups: a list that fails is run
 * again one hold a list). A hold that fails is logged and postponed.
 */
async function settleDueHolds(
  ctx: BillingContext,
  log: Logger,
  due: readonly DueHold[],
): Promise<{ outcomes: HoldOutcome[]; busyHolds: BusyHold[] }> {
  const outcomes: HoldOutcome[] = [];
  const busyHolds: BusyHold[] = [];
  const listed: { index: number; hold: DueHold; write: CreditWrite }[] = [];
  for (const [index, hold] of due.entries()) {
    try {
      listed.push({ index, hold, write: automaticSettlement(targetOf(hold), parseAutoAction(hold)) });
    } catch (error) {
      outcomes[index] = await settlementFailed(ctx, log, hold, error);
    }
  }
  const answers = await runSweeperGroups(
    ctx,
    listed.map(({ hold, write }) => ({ customerPk: hold.customerPk, writes: [write] })),
  );
  for (const [i, { index, hold, write }] of listed.entries()) {
    const answer = answers[i];
    if (!answer) throw new Error("a due hold has no answer");
    outcomes[index] = answer.ok ? await outcomeOf(ctx, log, hold, answer.answers[0]) : await settlementFailed(ctx, log, hold, answer.error);
    if (outcomes[index] === "busy") busyHolds.push({ hold, write });
  }
  return { outcomes, busyHolds };
}

/** The hold as a settlement names it: the sweeper acts for no key and no customer id. */
const targetOf = (hold: DueHold) => ({ projectId: hold.projectId, apiKeyId: null, transactionId: hold.transactionId, customerId: null });

/** What a hold's answer in the list came to. No re-read: the list decided from the hold's state under its lock. */
async function outcomeOf(ctx: BillingContext, log: Logger, hold: DueHold, answer: Settled | undefined): Promise<HoldOutcome> {
  if (!answer) throw new Error("a due hold has no answer");
  if (!answer.ok) return settlementFailed(ctx, log, hold, answer.error);
  if (answer.result === null) return "busy";
  // A hold a caller settled meanwhile comes back as a replay: nothing settled now.
  return isReplay(answer.result) ? "not settled" : "settled";
}

/**
 * A hold a caller settled meanwhile (a refusal saying so), else a failure: the hold postponed and
 * the failure logged, unless another instance had postponed it already (it logged the failure).
 */
async function settlementFailed(ctx: BillingContext, log: Logger, hold: DueHold, error: unknown): Promise<HoldOutcome> {
  if (error instanceof BillingError && SETTLED_MEANWHILE.has(error.code)) return "not settled";
  const target = { projectId: hold.projectId, transactionId: hold.transactionId, fromMs: hold.after.atMs };
  const postponed = await postponeAutoSettlement(ctx.database, target, ctx.now() + SWEEP_RETRY_DELAY_MS).catch(() => "failed" as const);
  // The hold by its row id: its transaction id is the caller's, kept out of logs.
  if (postponed === "postponed") log.error({ err: error, holdPk: hold.pk.toString() }, "auto-settlement failed; postponed");
  // Its customer busy (a customer written without pause), or the database failing: still due.
  else if (postponed !== "moved") log.error({ err: error, holdPk: hold.pk.toString() }, "auto-settlement failed; not postponed, still due");
  return "not settled";
}

/** The sweeper's settlements of overdue holds sent in line; a failure is handled as the sweep's own are. */
export const overdueSettlements = (ctx: BillingContext, log: Logger, observer: SweepObserver = {}): OverdueSettlements =>
  new OverdueSettlements(ctx, {
    failed: (hold, error) => settlementFailed(ctx, log, hold, error),
    settled: (hold) => observer.onSettled?.(ctx.now() - hold.after.atMs, "in_line"),
  });

/** One pass from the head of the due order; how many holds it settled. */
export const sweepDueHolds = async (ctx: BillingContext, log: Logger): Promise<number> => (await sweepDueHoldsFrom(ctx, log, null)).done;

/**
 * Passes one sweep makes at most, so that event pruning still comes round during a long backlog:
 * 5,000 due holds and as many expiries and starts. A sweep that stopped there having done some
 * work is followed at once by the next (startSweeper), not at the next tick.
 */
export const SWEEP_PASSES_MAX = 100;

/**
 * A list a sweep read to its end is read again from its head once this long has passed (on the
 * billing clock) while the sweep goes on with the others: holds that fall due during a long sweep
 * of expiries or starts (20,000 starting at midnight take about 10 s) are not left for its end.
 */
export const SWEEP_REOPEN_AFTER_MS = 1_000;

/**
 * One sweep: due holds, expiries, then accounts that started (their customers' alerts decided
 * again), in passes of a batch each. Each list is read on from where
 * its last pass ended while that pass read a full batch (a burst of due holds or of expiries at
 * one instant is worked through in one tick, not one batch per interval, and a busy customer's
 * holds or accounts are passed over, not read again at the head of every pass), up to
 * SWEEP_PASSES_MAX passes or until `stopping` says so; then, with `retention` and unless stopping,
 * the events past it are pruned. A customer whose expiry (or start) records failed is logged and
 * left for the next sweep.
 */
export async function sweep(ctx: BillingContext, log: Logger, options: SweepOptions = {}): Promise<SweepCounts> {
  return (await sweepOnce(ctx, log, options)).counts;
}

export interface SweepCounts {
  readonly settled: number;
  readonly recorded: number;
  readonly started: number;
}

interface SweepOptions {
  readonly retention?: EventRetention | undefined;
  readonly stopping?: () => boolean;
  /** Look for customers whose alerts an older build set without their flag (repairAlertFlags). */
  readonly alertFlags?: boolean;
  /** A customer's expiry (or start) records failed unexpectedly (by default logged, each time). */
  readonly onExpiryFailure?: (customerPk: bigint, error: unknown) => void;
  /** Where busy holds overdue are sent behind their customer's calls (none: left to SKIP LOCKED). */
  readonly overdue?: OverdueSettlements;
  /** SWEEP_PASSES_MAX unless given (tests make it small). */
  readonly passesMax?: number;
  /** What the sweep reports (metrics). */
  readonly observer?: SweepObserver;
}

/** sweep(), and whether it stopped at SWEEP_PASSES_MAX with a list not read to its end. */
async function sweepOnce(ctx: BillingContext, log: Logger, options: SweepOptions): Promise<{ counts: SweepCounts; more: boolean }> {
  if (options.alertFlags) await repairAlertFlags(ctx, log);
  // Customers found busy (or failing) in this sweep: left out of its later reads.
  const busy = new Set<bigint>();
  const holds = new SweptList(
    (after) => sweepDueHoldsFrom(ctx, log, after, busy, { overdue: options.overdue, observer: options.observer }),
    ctx.now,
  );
  const expiries = new SweptList((after) => recordExpiriesFrom(ctx, after, busy), ctx.now);
  const starts = new SweptList((after) => recordStartsFrom(ctx, after, busy), ctx.now);
  const failed = options.onExpiryFailure ?? ((customerPk, error) => logExpiryFailure(log, customerPk, error));
  const passesMax = options.passesMax ?? SWEEP_PASSES_MAX;
  for (let pass = 0; pass < passesMax && !options.stopping?.() && !(holds.ended && expiries.ended && starts.ended); pass++) {
    await holds.pass();
    for (const { customerPk, error } of await expiries.pass()) failed(customerPk, error);
    for (const { customerPk, error } of await starts.pass()) failed(customerPk, error);
  }
  const more = !(holds.ended && expiries.ended && starts.ended);
  if (options.retention && !options.stopping?.()) await pruneExpiredEvents(ctx, options.retention);
  return { counts: { settled: holds.done, recorded: expiries.done, started: starts.done }, more };
}

const logExpiryFailure = (log: Logger, customerPk: bigint, error: unknown) =>
  log.error({ err: error, customerPk: customerPk.toString() }, "recording expiries or starts failed; left for the next sweep");

/**
 * One error line per customer whose expiry records keep failing, then quiet for
 * EXPIRY_FAILURE_LOG_SPACING_MS (a sweep tries it again every tick).
 */
function spacedExpiryFailures(log: Logger): (customerPk: bigint, error: unknown) => void {
  const lastLogged = new Map<bigint, number>();
  return (customerPk, error) => {
    const now = Date.now();
    const last = lastLogged.get(customerPk);
    if (last !== undefined && now - last < EXPIRY_FAILURE_LOG_SPACING_MS) return;
    if (lastLogged.size >= SWEEP_BUSY_CUSTOMERS_MAX) lastLogged.clear();
    lastLogged.set(customerPk, now);
    logExpiryFailure(log, customerPk, error);
  };
}

/** How long a customer whose expiry records keep failing goes without a new error line. */
const EXPIRY_FAILURE_LOG_SPACING_MS = 10 * 60_000;

/**
 * A sweeper's list read pass after pass, each going on from where the last one ended, until it
 * reads the end; then, SWEEP_REOPEN_AFTER_MS later, from its head again while the sweep goes on.
 */
class SweptList {
  done = 0;
  ended = false;
  private after: DueCursor | null = null;
  private endedAtMs = 0;

  constructor(
    private readonly read: (after: DueCursor | null) => Promise<SweepPass>,
    private readonly now: () => number,
  ) {}

  async pass(): Promise<SweepPass["failures"]> {
    if (this.ended && this.now() - this.endedAtMs < SWEEP_REOPEN_AFTER_MS) return [];
    const { done, next, failures } = await this.read(this.after);
    this.done += done;
    this.after = next;
    this.ended = next === null;
    if (this.ended) this.endedAtMs = this.now();
    return failures;
  }
}

/**
 * Runs sweeps until stopped: one at once, then one every `intervalMs` (a tick is skipped while the
 * previous sweep runs), and the next at once after a sweep that stopped at its passes with work left.
 */
export function startSweeper(
  ctx: BillingContext,
  log: Logger,
  options: {
    readonly intervalMs: number;
    readonly retention?: EventRetention;
    readonly passesMax?: number;
    readonly observer?: SweepObserver;
  },
): { stop(): Promise<void> } {
  const { intervalMs, retention, observer = {}, passesMax = SWEEP_PASSES_MAX } = options;
  let running: Promise<void> | null = null;
  let stopped = false;
  let alertFlagsDueAt = 0;
  const onExpiryFailure = spacedExpiryFailures(log);
  const overdue = overdueSettlements(ctx, log, observer);
  // One warning per run of failures (a database outage fails every sweep), one line when back.
  let failing = false;
  const tick = () => {
    if (running || stopped) return;
    const alertFlags = Date.now() >= alertFlagsDueAt;
    running = sweepOnce(ctx, log, { retention, stopping: () => stopped, alertFlags, onExpiryFailure, overdue, passesMax, observer })
      .then(({ counts, more }) => {
        if (alertFlags) alertFlagsDueAt = Date.now() + ALERT_FLAG_REPAIR_INTERVAL_MS;
        if (failing) log.info("sweeps succeed again");
        failing = false;
        // A backlog goes on at once (after `running` is cleared), as long as the sweeps get through some of it.
        if (more && !stopped && counts.settled + counts.recorded + counts.started > 0) setImmediate(tick);
      })
      .catch((error: unknown) => {
        if (!failing) log.warn({ err: error }, "sweep failed; retrying every interval, quietly until one succeeds");
        failing = true;
      })
      .finally(() => {
        running = null;
      });
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  setImmediate(tick);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
      await overdue.stop();
    },
  };
}
