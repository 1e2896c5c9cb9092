import type { CreditWrite } from "../domain/plans/write-list.js";
import { BillingError } from "../errors/billing-error.js";
import { customerRefsByPk } from "../store/customers-store.js";
import type { DueHold } from "../store/transactions-store.js";
import type { BillingContext } from "./context.js";

/** How far past its deadline a due hold the sweeper finds busy is sent behind its customer's calls. */
export const SWEEP_IN_LINE_OVERDUE_MS = 2_000;
/** How long such a settlement may wait for its turn; past that it is not run, and a later sweep sends it again. */
export const SWEEP_IN_LINE_WAIT_MS = 5_000;
/** Such settlements on their way at once, per instance; the holds past them wait for a later sweep. */
export const SWEEP_IN_LINE_MAX = 100;
/**
 * A hold whose settlement in line failed is not sent in line again for this long: its
 * postponement (SKIP LOCKED) finds a customer written without pause busy, so the hold stays due,
 * and it would otherwise fail and be logged at every sweep.
 */
export const SWEEP_IN_LINE_RETRY_AFTER_MS = 60_000;
/** Failed holds remembered so (the oldest forgotten first): a few hundred kilobytes at most. */
const FAILED_REMEMBERED = 10_000;

/** A due hold the sweeper found busy, with the settlement it asked for. */
export interface BusyHold {
  readonly hold: DueHold;
  readonly write: CreditWrite;
}

/**
 * The sweeper's settlements of holds overdue on customers that its SKIP LOCKED never finds free
 * (a customer written without pause: 48 writers on one kept its due holds frozen for as long as
 * they ran). Each goes in its customer's line on this instance, after the calls in flight there
 * (GroupCommit.runBehindCustomer), so it waits for no lock the customer's own next group does not
 * take; a customer that is busy with no call of this instance (held by another instance's calls,
 * or by a long transaction) is left to SKIP LOCKED, as before. The sweep does not wait for them:
 * each is on its way at most SWEEP_IN_LINE_WAIT_MS, one per hold, SWEEP_IN_LINE_MAX at once.
 */
export class OverdueSettlements {
  private readonly onTheirWay = new Map<bigint, Promise<void>>();
  /** Holds whose settlement in line failed, and when they may be sent again. */
  private readonly failedUntil = new Map<bigint, number>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly ctx: BillingContext,
    private readonly on: {
      /** A settlement that failed, but for a wait that ran out: the sweeper's own handling (logged, the hold postponed). */
      readonly failed: (hold: DueHold, error: unknown) => Promise<unknown>;
      /** A hold this sent settled (not a replay of another's settlement). */
      readonly settled: (hold: DueHold) => void;
    },
  ) {}

  /** Settlements sent and not answered yet. */
  get size(): number {
    return this.onTheirWay.size;
  }

  /** Sends each of these holds that is overdue and not on its way already; how many it sent. Waits only for the customers' ids. */
  async send(busy: readonly BusyHold[]): Promise<number> {
    const groupCommit = this.ctx.groupCommit;
    const nowMs = this.ctx.now();
    const overdue = busy.filter(
      ({ hold }) =>
        nowMs - hold.after.atMs >= SWEEP_IN_LINE_OVERDUE_MS && !this.onTheirWay.has(hold.pk) && !this.failedLately(hold.pk, nowMs),
    );
    if (groupCommit === undefined || overdue.length === 0 || this.stopping.signal.aborted) return 0;
    const customers = await customerRefsByPk(
      this.ctx.database.db,
      overdue.map(({ hold }) => hold.customerPk),
    );
    let sent = 0;
    for (const { hold, write } of overdue) {
      const customer = customers.get(hold.customerPk);
      if (customer === undefined || this.onTheirWay.size >= SWEEP_IN_LINE_MAX) continue;
      const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(SWEEP_IN_LINE_WAIT_MS)]);
      const answer = groupCommit.runBehindCustomer({ ...customer, pk: hold.customerPk }, write, signal);
      if (answer === null) continue;
      const done = answer
        .then(
          (result) => {
            if (!isReplay(result)) this.on.settled(hold);
          },
          (error: unknown) => this.settlementFailed(hold, error),
        )
        .finally(() => this.onTheirWay.delete(hold.pk));
      this.onTheirWay.set(hold.pk, done);
      sent++;
    }
    return sent;
  }

  /** Resolves once every settlement sent so far is answered. */
  async answered(): Promise<void> {
    await Promise.all(this.onTheirWay.values());
  }

  /** Sends no more; those not begun leave their line now, those begun are waited for. */
  async stop(): Promise<void> {
    this.stopping.abort(new DOMException("The sweeper stops.", "AbortError"));
    await this.answered();
  }

  private async settlementFailed(hold: DueHold, error: unknown): Promise<void> {
    // Its wait ran out (not run), or the line was full: a later sweep tries again.
    if (error instanceof BillingError && error.spec.retryable) return;
    this.failedUntil.delete(hold.pk);
    this.failedUntil.set(hold.pk, this.ctx.now() + SWEEP_IN_LINE_RETRY_AFTER_MS);
    const oldest = this.failedUntil.keys().next();
    if (this.failedUntil.size > FAILED_REMEMBERED && !oldest.done) this.failedUntil.delete(oldest.value);
    await this.on.failed(hold, error);
  }

  private failedLately(pk: bigint, nowMs: number): boolean {
    const until = this.failedUntil.get(pk);
    if (until === undefined) return false;
    if (nowMs < until) return true;
    this.failedUntil.delete(pk);
    return false;
  }
}

/** A settlement's answer that replays another's (a caller's, or another instance's sweeper's). */
export const isReplay = (result: unknown): boolean =>
  typeof result === "object" && result !== null && "isIdempotentReplay" in result && result.isIdempotentReplay === true;
