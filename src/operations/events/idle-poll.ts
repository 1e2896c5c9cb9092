import { EVENT_POLL_QUIET_AFTER_MS } from "../../domain/limits.js";

/**
 * The wait between a feed loop's polls (the stamper's, the watchers' tail's, the publisher's):
 * `baseMs` while polls find something, and for EVENT_POLL_QUIET_AFTER_MS after the last that
 * did; then doubling with each poll that finds nothing, up to `idleMs`. A quiet feed costs a
 * query every `idleMs` instead of every `baseMs`; the first event another instance commits after
 * a quiet spell waits at most `idleMs` to be found (a local commit nudges the loops at once).
 */
export class IdlePoll {
  private readonly idleMs: number;
  private wait: number;
  private lastFoundMs: number;

  constructor(
    private readonly baseMs: number,
    idleMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.idleMs = Math.max(baseMs, idleMs);
    this.wait = baseMs;
    this.lastFoundMs = now();
  }

  /** How long to wait before the next poll. */
  get waitMs(): number {
    return this.wait;
  }

  /** Whether the polls have slowed past the base interval. */
  get slowed(): boolean {
    return this.wait > this.baseMs;
  }

  /** News is coming (this instance committed events): back to the base interval, and `wake` the loop if it had slowed. */
  hurry(wake: () => void): void {
    const slowed = this.slowed;
    this.record(true);
    if (slowed) wake();
  }

  /** After a poll: whether it found something (or the loop was nudged, which says there is news). */
  record(found: boolean): void {
    const nowMs = this.now();
    if (found) {
      this.lastFoundMs = nowMs;
      this.wait = this.baseMs;
    } else if (nowMs - this.lastFoundMs >= EVENT_POLL_QUIET_AFTER_MS) {
      this.wait = Math.min(this.wait * 2, this.idleMs);
    }
  }
}
