import { CallNotRun } from "../errors/billing-error.js";
import { type OverloadObserver, overloaded } from "./overload.js";
import { FairLine } from "./fair-line.js";

interface Waiter {
  readonly start: () => void;
}

/**
 * Bounds this instance's write transactions that run outside group commit (Batch, slot and
 * entitlement programs, alert settings, a settlement run alone). Each holds a pooled connection
 * while it waits on its customer's row lock, so a burst of them on one hot customer held every
 * connection (2,000 Batches of one Freeze: 20 of 20), and every other customer's calls waited
 * seconds for one. At most `max` run at once, leaving the rest of the pool to group commit's own
 * transactions and to reads; the next wait here, in memory, at most `waitingMax` of them, past
 * which a call is refused with rate_limit_exceeded (operations/overload.ts). The line is taken in
 * turns by tenant (the caller's project; fair-line.ts), each tenant's calls in arrival order, and
 * one tenant holds at most half of it: one project's flood of Batches neither keeps another's
 * next write behind all of it nor fills the line. A waiting call whose caller leaves (its signal
 * aborts) leaves the line without running.
 */
export class TransactionGate {
  private running = 0;
  private readonly line: FairLine<Waiter>;

  constructor(
    private readonly max: number,
    private readonly waitingMax: number,
    private readonly onOverloaded?: OverloadObserver,
  ) {
    this.line = new FairLine(Math.ceil(waitingMax / 2));
  }

  /** Runs `work` when a place is free; `tenant`: whose call it is (the caller's project), for the line's turns. */
  async run<T>(work: () => Promise<T>, signal: AbortSignal | undefined, tenant = ""): Promise<T> {
    if (this.running < this.max) this.running++;
    else await this.wait(signal, tenant);
    try {
      return await work();
    } finally {
      this.release();
    }
  }

  /** Transactions running through the gate, and calls waiting in its line (the metrics). */
  load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.line.length };
  }

  private wait(signal: AbortSignal | undefined, tenant: string): Promise<void> {
    if (signal?.aborted) return Promise.reject(new CallNotRun());
    if (this.line.length >= this.waitingMax) {
      return Promise.reject(
        overloaded(
          "gate",
          `This instance has ${this.waitingMax} writes waiting for a connection; retry later.`,
          { writes_waiting_max: this.waitingMax },
          this.onOverloaded,
        ),
      );
    }
    if (this.line.countOf(tenant) >= this.line.perTenantMax) {
      return Promise.reject(
        overloaded(
          "gate",
          `This project has ${this.line.perTenantMax} writes waiting for a connection on this instance; retry later.`,
          { project_writes_waiting_max: this.line.perTenantMax },
          this.onOverloaded,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      let stopWatching = () => {};
      const waiter: Waiter = {
        start: () => {
          stopWatching();
          resolve();
        },
      };
      stopWatching = this.line.push(tenant, waiter, signal, () => reject(new CallNotRun()));
    });
  }

  /** The finished transaction's place passes to the first in line, if any. */
  private release(): void {
    const [next] = this.line.take(1);
    if (next) next.start();
    else this.running--;
  }
}
