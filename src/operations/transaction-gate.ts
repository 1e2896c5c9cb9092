import { CallNotRun } from "../errors/billing-error.js";
import { type OverloadObserver, overloaded } from "./overload.js";
import { waitInLine } from "./waiting-line.js";

interface Waiter {
  readonly start: () => void;
}

/**
 * Bounds this instance's write transactions that run outside group commit (Batch, slot and
 * entitlement programs, alert settings, a settlement run alone). Each holds a pooled connection
 * while it waits on its customer's row lock, so a burst of them on one hot customer held every
 * connection (2,000 Batches of one Freeze: 20 of 20), and every other customer's calls waited
 * seconds for one. At most `max` run at once, leaving the rest of the pool to group commit's own
 * transactions and to reads; the next wait here, in memory and in arrival order, at most
 * `waitingMax` of them, past which a call is refused with rate_limit_exceeded (operations/overload.ts). A waiting call
 * whose caller leaves (its signal aborts) leaves the line without running.
 */
export class TransactionGate {
  private running = 0;
  private readonly line: Waiter[] = [];

  constructor(
    private readonly max: number,
    private readonly waitingMax: number,
    private readonly onOverloaded?: OverloadObserver,
  ) {}

  async run<T>(work: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (this.running < this.max) this.running++;
    else await this.wait(signal);
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

  private wait(signal: AbortSignal | undefined): Promise<void> {
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
    return new Promise<void>((resolve, reject) => {
      let stopWatching = () => {};
      const waiter: Waiter = {
        start: () => {
          stopWatching();
          resolve();
        },
      };
      stopWatching = waitInLine(this.line, waiter, signal, () => reject(new CallNotRun()));
    });
  }

  /** The finished transaction's place passes to the first in line, if any. */
  private release(): void {
    const next = this.line.shift();
    if (next) next.start();
    else this.running--;
  }
}
