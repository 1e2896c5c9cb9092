import { GROUP_COMMIT_HOLDS_REMEMBERED, GROUP_COMMIT_MAX, GROUP_COMMIT_QUEUE_MAX } from "../domain/limits.js";
import { isLostConnection } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";
import { executeGroupPlanned } from "./group-plan.js";
import { executeAlone, executeEachAlone, executeSideBySide, executeTogether, type Settled, type WriteOperation } from "./executor.js";

/** What group commit reports (metrics). */
export interface GroupCommitObserver {
  onGroup?(size: number): void;
  /** A group loaded once and planned in memory. */
  onPlanned?(): void;
  onFallback?(): void;
  /** Writes of different customers applied side by side in one transaction. */
  onSideBySide?(size: number): void;
}

export interface GroupCommitOptions {
  /**
   * Transactions this instance runs at once before new calls wait to go side by side: a call
   * that finds this many in flight would wait for a pooled connection anyway, so it waits in
   * line instead and the next free transaction carries the waiting calls together.
   */
  readonly transactions: number;
}

interface Waiting {
  readonly op: WriteOperation<unknown>;
  readonly settle: (settled: Settled<unknown>) => void;
  readonly fail: (error: unknown) => void;
}

/**
 * Per-customer group commit, on this instance. A call for a customer with nothing in flight runs
 * at once, alone (an idle customer pays nothing). Calls for a customer that arrive while one of
 * its transactions is in flight queue; when it ends, up to GROUP_COMMIT_MAX of them, in arrival
 * order, go through the executor as one transaction (executeTogether, not atomic): each planned
 * on the state the earlier ones left, each answered exactly as alone, one's refusal rolled back
 * to its own savepoint without touching the others. If that transaction fails, each is run again
 * alone. A Consume or Unfreeze that names no customer queues with the customer of its hold when a
 * call naming both went through this instance. A hot customer thus pays one COMMIT, and one
 * customer-lock acquisition, per group instead of per call.
 *
 * Across customers: with `transactions` of them in flight, the first call of an idle customer
 * waits in line (it would wait for a pooled connection anyway); the next transaction to end
 * starts up to GROUP_COMMIT_MAX waiting calls side by side in one transaction (executeSideBySide:
 * loaded together, written together). Other instances are not coordinated: the customer's row
 * lock still decides, so many instances stay correct.
 */
export class GroupCommit {
  /** Customers with a transaction in flight, and the calls waiting for it. */
  private readonly queues = new Map<string, Waiting[]>();
  /** Hold → customer, for settlements that name no customer (oldest forgotten first). */
  private readonly holdOwners = new Map<string, string>();
  /** First calls of idle customers, waiting for a transaction to go side by side in. */
  private readonly waiting: Waiting[] = [];
  /** Transactions this instance has in flight. */
  private inFlight = 0;

  constructor(
    private readonly ctx: BillingContext,
    private readonly observer: GroupCommitObserver = {},
    private readonly options: GroupCommitOptions = { transactions: Number.POSITIVE_INFINITY },
  ) {}

  async run<R>(op: WriteOperation<R>): Promise<R | null> {
    const result = await this.schedule(op);
    // Only a write that went through proves its hold belongs to the customer it named: a refused
    // one (another customer's transaction id, a scope mismatch) must not steer later settlements.
    if (op.customerKey !== null && op.holdKey !== undefined) this.remember(op.holdKey, op.customerKey);
    return result;
  }

  private async schedule<R>(op: WriteOperation<R>): Promise<R | null> {
    const key = op.customerKey ?? (op.holdKey === undefined ? undefined : this.holdOwners.get(op.holdKey));
    if (key === undefined || key === null) return executeAlone(this.ctx, op);
    const queue = this.queues.get(key);
    // A full queue is not grown: the call runs alone and waits on the customer's row lock instead.
    if (queue !== undefined && queue.length >= GROUP_COMMIT_QUEUE_MAX) return executeAlone(this.ctx, op);
    if (queue !== undefined) {
      const settled = await new Promise<Settled<unknown>>((settle, fail) => queue.push({ op, settle, fail }));
      if (!settled.ok) throw settled.error;
      return settled.result as R | null;
    }
    this.queues.set(key, []);
    try {
      // Only Deducts, Freezes, Consumes and Unfreezes go side by side (a deposit's load writes).
      if (this.inFlight < this.options.transactions || !op.together) return await this.counted(() => executeAlone(this.ctx, op));
      const settled = await new Promise<Settled<unknown>>((settle, fail) => this.waiting.push({ op, settle, fail }));
      if (!settled.ok) throw settled.error;
      return settled.result as R | null;
    } finally {
      void this.drain(key);
    }
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
      // The customers are all different (each has this call in flight); their locks are taken in
      // one statement, in primary-key order (loadTogether).
      const group = this.waiting.splice(0, GROUP_COMMIT_MAX);
      void this.counted(() => this.sideBySide(group.map((w) => w.op))).then(
        (settled) => {
          for (const [i, w] of group.entries()) w.settle(settled[i] ?? { ok: false, error: new Error("a waiting call has no result") });
        },
        (error: unknown) => {
          for (const w of group) w.fail(error);
        },
      );
    }
  }

  private async sideBySide(ops: readonly WriteOperation<unknown>[]): Promise<Settled<unknown>[]> {
    this.observer.onSideBySide?.(ops.length);
    // Two calls of one transaction id (a client's mistake, or a settlement of a hold made in
    // the same list) depend on each other: each alone, in order, answers them as it should.
    const holds = ops.flatMap((op) => (op.holdKey === undefined ? [] : [op.holdKey]));
    if (ops.length === 1 || new Set(holds).size < holds.length) return executeEachAlone(this.ctx, ops);
    return this.sharedOrEachAlone(ops, () => executeSideBySide(this.ctx, ops));
  }

  /** Runs the calls' shared transaction; if it fails before COMMIT, each call again, alone, in order. */
  private async sharedOrEachAlone(ops: readonly WriteOperation<unknown>[], shared: () => Promise<Settled<unknown>[]>) {
    try {
      return await shared();
    } catch (error) {
      // A lost connection may have lost only the answer to a COMMIT that happened: running the
      // calls again could apply them twice (a deposit without a key), so each gets the error, as
      // it would have alone.
      if (isLostConnection(error)) throw error;
      this.observer.onFallback?.();
      return executeEachAlone(this.ctx, ops);
    }
  }

  private remember(holdKey: string, customerKey: string): void {
    this.holdOwners.delete(holdKey);
    this.holdOwners.set(holdKey, customerKey);
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
      const group = queue.splice(0, GROUP_COMMIT_MAX);
      try {
        const settled = await this.counted(() =>
          this.commit(
            key,
            group.map((w) => w.op),
          ),
        );
        group.forEach((w, i) => {
          const s = settled[i];
          if (s) w.settle(s);
          else w.fail(new Error("a grouped call has no result"));
        });
      } catch (error) {
        for (const w of group) w.fail(error);
      }
    }
  }

  private async commit(key: string, ops: readonly WriteOperation<unknown>[]): Promise<Settled<unknown>[]> {
    this.observer.onGroup?.(ops.length);
    if (ops.length === 1) return executeEachAlone(this.ctx, ops);
    return this.sharedOrEachAlone(ops, async () => {
      const planned = await executeGroupPlanned(this.ctx, key, ops);
      if (planned === null) return executeTogether(this.ctx, ops, { atomic: false });
      this.observer.onPlanned?.();
      return planned;
    });
  }
}
