import type { Database } from "../../store/database.js";
import { lastPosition } from "../../store/event-feed-store.js";
import { IdlePoll } from "./idle-poll.js";
import { WakeUp } from "./wake-up.js";
import { outsideAnyTrace } from "../../telemetry/outside-any-trace.js";

/**
 * Tells this instance's watchers that the feed moved: one query of the highest position every
 * `intervalMs` while anyone listens (not one per watcher; slowing to `idleIntervalMs` while the
 * feed is quiet: IdlePoll), and at once when the local stamper stamped (`poke`). Listeners then
 * read what they have not seen.
 */
export class FeedTail {
  private readonly listeners = new Set<() => void>();
  private readonly wakeUp = new WakeUp();
  private last = -1n;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private readonly poll: IdlePoll;

  constructor(
    private readonly database: Database,
    intervalMs: number,
    idleIntervalMs: number,
  ) {
    this.poll = new IdlePoll(intervalMs, idleIntervalMs);
  }

  /** Calls `listener` whenever the feed may have moved; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    // A new watcher is news: the tail polls at its base interval again.
    this.poll.record(true);
    // The loop serves every watcher: started in the first one's trace, each poll would be its span.
    this.loop ??= outsideAnyTrace(() => this.run());
    return () => this.listeners.delete(listener);
  }

  /**
   * This instance committed events, which the stamper (here or on another instance) is about to
   * stamp: the tail polls at its base interval again, at once if it had slowed.
   */
  hurry(): void {
    this.poll.hurry(() => this.wakeUp.poke());
  }

  /** Events were stamped here: wake the listeners at once, without a query. */
  poke(): void {
    this.poll.record(true);
    for (const listener of this.listeners) listener();
  }

  /** Started by the first listener; runs until stop(), idle (no query) while nobody listens. */
  private async run(): Promise<void> {
    while (!this.stopped) {
      if (this.listeners.size > 0) {
        const top = await lastPosition(this.database.pool).catch(() => this.last);
        this.poll.record(top !== this.last);
        if (top !== this.last) {
          this.last = top;
          for (const listener of this.listeners) listener();
        }
      }
      await this.wakeUp.wait(this.poll.waitMs);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeUp.poke();
    await this.loop;
  }
}
