import { GROUP_COMMIT_HOLDS_REMEMBERED, GROUP_COMMIT_MAX, GROUP_COMMIT_QUEUE_MAX } from "../domain/limits.js";
import { type CustomerRef, customerKey, holdKey } from "../domain/customer-ref.js";
import { CallNotRun } from "../errors/billing-error.js";
import { type CreditWrite, customerRefOf, holdRefOf, projectOfWrite } from "../domain/plans/write-list.js";
import { isLockWaitExhausted, isLostConnection } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";
import { type OverloadedLine, overloaded } from "./overload.js";
import type { TransactionGate } from "./transaction-gate.js";
import { FairLine } from "./fair-line.js";
import { waitInLine } from "./waiting-line.js";
import { deadlinePassed, HeldElsewhere, runEachAlone, runList, type Settled, type WaitsFor, waitsForKey } from "./pipeline.js";
import { type CallerTrace, callerTrace, runForCallers } from "../telemetry/shared-work.js";

/** What group commit reports (metrics). */
export interface GroupCommitObserver {
  onGroup?(size: number): void;
  onFallback?(): void;
  /** Writes of different customers applied side by side in one transaction. */
  onSideBySide?(size: number): void;
  /** Calls set aside from a list because another transaction held their customer; they then run outside this instance's places. */
  onSetAside?(calls: number): void;
  /** A list whose bounded wait for its customers ran out (GROUP_COMMIT_LOCK_WAIT_S): it runs again with the held ones set aside. */
  onHeldWait?(): void;
  /** A call refused because its line was full. */
  onOverloaded?(line: OverloadedLine): void;
}

export interface GroupCommitOptions {
  /**
   * Transactions this instance runs at once before new calls wait to go side by side: a call
   * that finds this many in flight would wait for a pooled connection anyway, so it waits in
   * line instead and the next free transaction carries the waiting calls together.
   */
  readonly transactions: number;
  /**
   * Waiting calls of different customers go in one transaction. Off for a sharded database
   * (Vitess, TiDB), where a transaction must stay within one shard key (one customer).
   */
  readonly sideBySide: boolean;
  /** Calls one customer may have waiting here (GROUP_COMMIT_QUEUE_MAX; tests make it small). */
  readonly queueMax?: number;
  /** Calls in line to go side by side (WAITING_MAX, one project at most half; tests make it small). */
  readonly waitingMax?: number;
  /** The gate of the writes outside group commit: calls set aside from a side-by-side list run through it. */
  readonly gate?: TransactionGate;
}

/**
 * Calls in line to go side by side, per instance: idle customers' first calls (one each) and
 * settlements of holds this instance did not see frozen; the next is refused. One project holds
 * at most half of them (4,096, as the whole line was before it was kept per project): its burst
 * leaves the other half to the others.
 */
const WAITING_MAX = GROUP_COMMIT_QUEUE_MAX * 8;

interface Waiting {
  readonly op: CreditWrite;
  /** The caller's deadline and cancellation: a call that waited past them is answered without running. */
  readonly signal: AbortSignal | undefined;
  readonly settle: (settled: Settled) => void;
  readonly fail: (error: unknown) => void;
  /** The caller's trace: the group's span links to it. */
  readonly trace: CallerTrace;
  /**
   * Answered without running, instead of set aside, when another transaction holds its customer
   * past the bound: the sweeper's settlement sent in line, which a later sweep sends again, must
   * not wait out a lock wait (nor hold up the sweeper's stop) in the line of calls set aside.
   */
  readonly neverAside?: boolean;
}

/**
 * Per-customer group commit, on this instance. A call for a customer with nothing in flight runs
 * at once, alone (a list of one: an idle customer pays nothing). Calls for a customer that arrive
 * while one of its transactions is in flight queue; when it ends, up to GROUP_COMMIT_MAX of them,
 * in arrival order, go through the pipeline as one list (operations/pipeline.ts, not atomic):
 * each planned on the state the earlier ones left, each answered exactly as alone. If that
 * transaction fails, each is run again alone. A Consume or Unfreeze that names no customer queues
 * with the customer of its hold when a call naming both went through this instance. A hot
 * customer thus pays one COMMIT, and one customer-lock acquisition, per group instead of per call.
 *
 * Across customers: with `transactions` of them in flight, the first call of an idle customer
 * waits in line (it would wait for a pooled connection anyway); the next transaction to end
 * starts up to GROUP_COMMIT_MAX waiting calls side by side, as one list over their customers.
 * With `sideBySide` off (a sharded database: one transaction per shard key), each waiting call
 * runs alone instead. Other instances are not coordinated: the customers' row locks still
 * decide, so many instances stay correct. A customer with `queueMax` calls waiting refuses the
 * next with rate_limit_exceeded (retryable) until its queue moves.
 */
export class GroupCommit {
  /** Customers with a transaction in flight, and the calls waiting for it. */
  private readonly queues = new Map<string, Waiting[]>();
  /** Hold → customer, for settlements that name no customer (oldest forgotten first). */
  private readonly holdOwners = new Map<string, string>();
  /**
   * First calls of idle customers, waiting for a transaction to go side by side in: taken in turns
   * by project, so that one project's burst does not make every other project's calls wait behind it.
   */
  private readonly waiting: FairLine<Waiting>;
  /** Transactions this instance has in flight. */
  private inFlight = 0;
  /** Per customer, the calls set aside for it not begun yet, and the run of the last ones (runSetAside). */
  private readonly setAside = new Map<string, { waitsFor: WaitsFor; pending: Waiting[]; running: Promise<void> }>();

  constructor(
    private readonly ctx: BillingContext,
    private readonly observer: GroupCommitObserver = {},
    private readonly options: GroupCommitOptions = { transactions: Number.POSITIVE_INFINITY, sideBySide: true },
  ) {
    this.waiting = new FairLine(Math.ceil((options.waitingMax ?? WAITING_MAX) / 2));
  }

  /** What waits now, for the metrics: calls behind their customer's transaction, calls in line to go side by side, transactions in flight. */
  load(): { behindCustomer: number; sideBySide: number; transactions: number } {
    let behindCustomer = 0;
    for (const queue of this.queues.values()) behindCustomer += queue.length;
    return { behindCustomer, sideBySide: this.waiting.length, transactions: this.inFlight };
  }

  async run(write: CreditWrite, signal?: AbortSignal): Promise<unknown> {
    const result = await this.schedule(write, signal);
    // Only a write that went through proves its hold belongs to the customer it named: a refused
    // one (another customer's transaction id, a scope mismatch) must not steer later settlements.
    const customer = customerRefOf(write);
    const hold = holdRefOf(write);
    if (customer !== null && hold !== null) this.remember(holdKey(hold), customerKey(customer));
    return result;
  }

  /**
   * Runs a write in a customer's line, after the calls of that customer in flight or waiting here
   * (in its next group); null, and not run, when this instance has none of them or the customer's
   * queue is full. For the sweeper's settlement of a hold overdue on a customer written without
   * pause: its SKIP LOCKED never finds such a customer free, and this waits for no lock that the
   * customer's own next group would not take anyway.
   */
  runBehindCustomer(customer: CustomerRef & { readonly pk: bigint }, write: CreditWrite, signal?: AbortSignal): Promise<unknown> | null {
    const queue = this.queues.get(customerKey(customer));
    if (queue === undefined || queue.length >= (this.options.queueMax ?? GROUP_COMMIT_QUEUE_MAX)) return null;
    // A customer another transaction holds (its calls set aside): its next group would not run either.
    if (this.heldCustomers().has(customer.pk)) return null;
    return new Promise<Settled>((settle, fail) =>
      enqueue(queue, { op: write, signal, settle, fail, trace: callerTrace(), neverAside: true }),
    ).then(answerOf);
  }

  /**
   * A call alone, in a transaction of its own in one of this instance's places. Bounded like a
   * side-by-side list: a customer held elsewhere longer than GROUP_COMMIT_LOCK_WAIT_S sets the call
   * aside, to wait outside the place (a held customer's lone call used to keep one of the two
   * places for up to five lock waits, and every other customer's calls waited behind it).
   */
  private alone(write: CreditWrite, signal: AbortSignal | undefined): Promise<unknown> {
    return new Promise<Settled>((settle, fail) => {
      const w: Waiting = { op: write, signal, settle, fail, trace: callerTrace() };
      void this.counted(() => this.runGroup([w])).catch((error: unknown) => fail(error));
    }).then(answerOf);
  }

  private queueKeyOf(write: CreditWrite): string | undefined {
    const customer = customerRefOf(write);
    if (customer !== null) return customerKey(customer);
    const hold = holdRefOf(write);
    return hold === null ? undefined : this.holdOwners.get(holdKey(hold));
  }

  private async schedule(write: CreditWrite, signal: AbortSignal | undefined): Promise<unknown> {
    const key = this.queueKeyOf(write);
    // A settlement of a hold this instance did not see frozen (behind a balancer, most of them):
    // in line like an idle customer's call, so that a burst of them is bounded by this instance's
    // transactions, not run alone each on a connection of its own (2,000 of one hot customer's
    // held all 20 and stalled every other customer).
    if (key === undefined) return this.inLine(write, signal);
    const queue = this.queues.get(key);
    // A full queue is not grown, and the call is not run alone either: it would hold a pooled
    // connection waiting on the customer's row lock, and a burst past the queue held the whole pool
    // so (19 of 20 connections seen), stalling every other customer for seconds.
    const queueMax = this.options.queueMax ?? GROUP_COMMIT_QUEUE_MAX;
    if (queue !== undefined && queue.length >= queueMax) throw this.customerFull(queueMax);
    if (queue !== undefined) {
      return answerOf(
        await new Promise<Settled>((settle, fail) => enqueue(queue, { op: write, signal, settle, fail, trace: callerTrace() })),
      );
    }
    this.queues.set(key, []);
    try {
      return await this.inLine(write, signal);
    } finally {
      void this.drain(key);
    }
  }

  /** Runs a call at once in a transaction of its own while this instance has one to spare, else in line to go side by side. */
  private async inLine(write: CreditWrite, signal: AbortSignal | undefined): Promise<unknown> {
    if (this.inFlight < this.options.transactions) return this.alone(write, signal);
    const project = projectOfWrite(write).toString();
    const waitingMax = this.options.waitingMax ?? WAITING_MAX;
    if (this.waiting.length >= waitingMax) {
      throw overloaded(
        "side_by_side",
        `This instance has ${waitingMax} calls in line; retry later.`,
        { calls_waiting_max: waitingMax },
        this.observer.onOverloaded,
      );
    }
    const perProject = this.waiting.perTenantMax;
    if (this.waiting.countOf(project) >= perProject) {
      throw overloaded(
        "side_by_side",
        `This project has ${perProject} calls in line on this instance; retry later.`,
        { project_calls_waiting_max: perProject },
        this.observer.onOverloaded,
      );
    }
    return answerOf(
      await new Promise<Settled>((settle, fail) => {
        const w: Waiting = { op: write, signal, settle, fail, trace: callerTrace() };
        this.waiting.push(project, w, signal, () => settle({ ok: false, error: deadlinePassed() }));
      }),
    );
  }

  /** Runs one transaction of this instance, counted; when it ends, waiting calls may start. */
  private async counted<T>(work: () => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await work();
    } finally {
      this.inFlight--;
      this.startWaiting();
    }
  }

  /** Starts the waiting calls, side by side, while this instance has transactions to spare. */
  private startWaiting(): void {
    while (this.inFlight < this.options.transactions && this.waiting.length > 0) {
      // Mostly different customers (each has this call in flight; settlements that name only their
      // hold may share one); the prefetch locks them in one statement, in primary-key order.
      const group = stillWanted(this.waiting.take(this.options.sideBySide ? GROUP_COMMIT_MAX : 1));
      if (group.length === 0) continue;
      void this.counted(() =>
        runForCallers(
          "billing side by side",
          group.map((w) => w.trace),
          () => {
            this.observer.onSideBySide?.(group.length);
            return this.runGroup(group);
          },
        ),
      ).catch((error: unknown) => failAll(group, error));
    }
  }

  /**
   * Runs waiting calls as one list and answers each. If the list's transaction fails, each call
   * runs again alone, in order, under its own caller's deadline (one that passed meanwhile is not
   * run), and is answered as soon as its own run ends, not when the last one does. The calls whose
   * customer another transaction holds longer than GROUP_COMMIT_LOCK_WAIT_S (another instance, a
   * Batch, an operator's session) are set aside instead of keeping this place, and run after it,
   * outside it (runSetAside); `asideDone` resolves when they have.
   */
  private async runGroup(group: readonly Waiting[]): Promise<{ asideDone: Promise<void> }> {
    const { alone, aside } = await this.runAsList(group, this.ctx, true);
    const byWait = new Map<string, { waitsFor: WaitsFor; ws: Waiting[] }>();
    for (const { w, waitsFor } of aside) {
      if (w.neverAside) w.settle({ ok: false, error: deadlinePassed() });
      else {
        const key = waitsForKey(waitsFor);
        const entry = byWait.get(key) ?? { waitsFor, ws: [] };
        entry.ws.push(w);
        byWait.set(key, entry);
      }
    }
    const asideDone = Promise.all([...byWait.values()].map(({ waitsFor, ws }) => this.runSetAside(waitsFor, ws))).then(() => undefined);
    await this.runEachAlone(alone);
    return { asideDone };
  }

  /**
   * Runs calls set aside from their list, not in the list's place: through the gate of the writes
   * outside group commit, waiting on their customer's lock as long as any call does. The calls
   * set aside for one customer go one list after another, each list taking the calls set aside
   * meanwhile (up to GROUP_COMMIT_MAX): a stuck customer's stream of them takes one place of the
   * gate, and one lock wait serves them all.
   */
  private runSetAside(waitsFor: WaitsFor, ws: readonly Waiting[]): Promise<void> {
    const key = waitsForKey(waitsFor);
    let line = this.setAside.get(key);
    if (!line) {
      line = { waitsFor, pending: [], running: Promise.resolve() };
      this.setAside.set(key, line);
    }
    // Bounded as a customer's queue is: the calls of a customer known held come here at once, not
    // after each list's wait, so without it a stream of them grew the line without limit.
    const queueMax = this.options.queueMax ?? GROUP_COMMIT_QUEUE_MAX;
    const room = Math.max(0, queueMax - line.pending.length);
    // A call whose caller leaves while it waits here leaves at once, answered without running,
    // not when the step before it ends (a list waiting out every lock wait on its customer).
    for (const w of ws.slice(0, room)) enqueue(line.pending, w);
    for (const refused of ws.slice(room)) {
      refused.fail(this.customerFull(queueMax));
    }
    const current = line;
    const run = current.running.then(async () => {
      const next = stillWanted(current.pending.splice(0, GROUP_COMMIT_MAX));
      if (next.length === 0) return;
      try {
        const tenant = next[0] ? projectOfWrite(next[0].op).toString() : "";
        const outside = { ...this.ctx, tenant, ...(this.options.gate ? { transactionGate: this.options.gate } : {}) };
        const { alone, failure } = await this.runAsList(next, outside, false);
        // The calls are one customer's, and their list waited out every lock wait on it: run
        // alone, each would wait as long again, one after another (the last answered minutes later).
        if (isLockWaitExhausted(failure)) failAll(alone, failure);
        else await this.runEachAlone(alone, this.options.gate);
      } catch (error) {
        // Never a broken line: the calls of this step get the error, the next steps still run.
        failAll(next, error);
      }
    });
    current.running = run;
    void run.finally(() => {
      if (this.setAside.get(key) === current && current.running === run) this.setAside.delete(key);
    });
    return run;
  }

  /** The refusal of a call past a customer's `queueMax` calls waiting here (its queue, or its calls set aside). */
  private customerFull(queueMax: number) {
    return overloaded(
      "customer",
      `This customer has ${queueMax} calls waiting on this instance; retry later.`,
      { customer_calls_waiting_max: queueMax },
      this.observer.onOverloaded,
    );
  }

  /** Runs the calls of a list whose transaction failed each alone, in order (the fallback). */
  private async runEachAlone(alone: readonly Waiting[], gate?: TransactionGate): Promise<void> {
    if (alone.length === 0) return;
    this.observer.onFallback?.();
    for (const w of stillWanted(alone)) await this.runAlone(w, gate);
  }

  /** Runs a call of a group alone, under its caller's signal, and answers it (never throws). */
  private async runAlone(w: Waiting, gate?: TransactionGate): Promise<void> {
    const ctx = {
      ...this.ctx,
      tenant: projectOfWrite(w.op).toString(),
      ...(w.signal ? { signal: w.signal } : {}),
      ...(gate ? { transactionGate: gate } : {}),
    };
    try {
      const [settled] = await runEachAlone(ctx, [w.op]);
      w.settle(settled ?? { ok: false, error: new Error("a grouped call has no result") });
    } catch (error) {
      w.fail(error);
    }
  }

  /**
   * Runs the calls as one list and answers them; returns those still to run: none, the ones set
   * aside (`aside`), or all of them (`alone`) when the list's transaction failed (`failure`).
   */
  private async runAsList(
    group: readonly Waiting[],
    ctx: BillingContext,
    setAsideHeld: boolean,
  ): Promise<{ alone: readonly Waiting[]; aside: ReadonlyArray<{ w: Waiting; waitsFor: WaitsFor }>; failure?: unknown }> {
    // The list is not begun, nor tried again, once every one of its callers has left.
    const everyoneLeft = whenAllAborted(group.map((w) => w.signal));
    try {
      const settled = await runList(
        everyoneLeft ? { ...ctx, signal: everyoneLeft } : ctx,
        group.map((w) => w.op),
        setAsideHeld
          ? { atomic: false, setAsideHeld, heldKnown: this.heldCustomers(), onHeldWait: () => this.observer.onHeldWait?.() }
          : { atomic: false },
      );
      const aside: { w: Waiting; waitsFor: WaitsFor }[] = [];
      for (const [i, w] of group.entries()) {
        const answer = settled[i] ?? { ok: false, error: new Error("a grouped call has no result") };
        if (!answer.ok && answer.error instanceof HeldElsewhere) aside.push({ w, waitsFor: answer.error.waitsFor });
        else w.settle(answer);
      }
      if (aside.length > 0) this.observer.onSetAside?.(aside.length);
      return { alone: [], aside };
    } catch (error) {
      // A lost connection may have lost only the answer to a COMMIT that happened: running the
      // calls again could apply them twice (a deposit without a key), so each gets the error, as
      // it would have alone.
      // A list of one has run alone already: its failure is its answer.
      if (group.length === 1 || isLostConnection(error) || error instanceof CallNotRun) {
        failAll(group, error);
        return { alone: [], aside: [] };
      }
      return { alone: group, aside: [], failure: error };
    }
  }

  /**
   * The customers (pks) whose calls set aside still wait here: another transaction held each of
   * them for longer than the bound, so the next lists set their writes aside before waiting. A
   * stream of settlements that name only their hold otherwise paid the bound in every list.
   */
  private heldCustomers(): ReadonlySet<bigint> {
    const held = new Set<bigint>();
    for (const { waitsFor } of this.setAside.values()) if (waitsFor.kind === "customer") held.add(waitsFor.pk);
    return held;
  }

  private remember(hold: string, customer: string): void {
    this.holdOwners.delete(hold);
    this.holdOwners.set(hold, customer);
    if (this.holdOwners.size > GROUP_COMMIT_HOLDS_REMEMBERED) {
      const oldest = this.holdOwners.keys().next();
      if (!oldest.done) this.holdOwners.delete(oldest.value);
    }
  }

  /** Runs the queued calls of a customer, group after group, until none is left. */
  private async drain(key: string): Promise<void> {
    for (;;) {
      const queue = this.queues.get(key);
      if (!queue || queue.length === 0) {
        this.queues.delete(key);
        return;
      }
      const group = stillWanted(queue.splice(0, GROUP_COMMIT_MAX));
      if (group.length === 0) continue;
      this.observer.onGroup?.(group.length);
      const ran = await this.counted(() =>
        runForCallers(
          "billing group commit",
          group.map((w) => w.trace),
          () => this.runGroup(group),
        ),
      ).catch((error: unknown) => failAll(group, error));
      // The customer's next calls go after the ones set aside, outside this instance's places.
      if (ran) await ran.asideDone;
    }
  }
}

/**
 * Puts a call in a line; a caller that leaves while it waits leaves the line at once (answered
 * without running), so callers gone no longer take places that live ones are refused for.
 */
function enqueue(line: Waiting[], waiting: Waiting): void {
  waitInLine(line, waiting, waiting.signal, () => waiting.settle({ ok: false, error: deadlinePassed() }));
}

/** A signal that aborts once all of these have (none when one of them cannot: a call without a signal). */
function whenAllAborted(signals: ReadonlyArray<AbortSignal | undefined>): AbortSignal | undefined {
  if (signals.some((signal) => signal === undefined)) return undefined;
  const all = new AbortController();
  let left = signals.length;
  const one = () => {
    left--;
    if (left === 0) all.abort(new DOMException("Every caller of the list left.", "AbortError"));
  };
  for (const signal of signals as AbortSignal[]) {
    if (signal.aborted) one();
    else signal.addEventListener("abort", one, { once: true });
  }
  return all.signal;
}

/** Fails the calls of a group not answered yet (an answered one keeps its answer). */
function failAll(group: readonly Waiting[], error: unknown): void {
  for (const w of group) w.fail(error);
}

/** The waiting calls whose callers still want an answer; the others are answered now, without running. */
function stillWanted(group: readonly Waiting[]): Waiting[] {
  return group.filter((w) => {
    if (!w.signal?.aborted) return true;
    w.settle({ ok: false, error: deadlinePassed() });
    return false;
  });
}

/** A call's own answer: its result, or the error it alone would have got. */
function answerOf(settled: Settled | undefined): unknown {
  if (!settled) throw new Error("a call has no result");
  if (!settled.ok) throw settled.error;
  return settled.result;
}
