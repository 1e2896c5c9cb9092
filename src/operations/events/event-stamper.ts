import type { Logger } from "pino";
import { EVENT_STAMP_BATCH } from "../../domain/limits.js";
import type { Database } from "../../store/database.js";
import { hasUnstamped, stampCommittedEvents } from "../../store/event-feed-store.js";
import type { LeaseKeeper } from "./lease-keeper.js";
import { IdlePoll } from "./idle-poll.js";
import { WakeUp } from "./wake-up.js";

export const STAMPER_LEASE = "event_stamper";

/**
 * The one writer of commit-order positions (per database, elected through the `event_stamper`
 * lease). Every instance runs one; only the lease holder stamps. It looks for events every
 * `intervalMs` (slowing to `idleIntervalMs` while none come: IdlePoll), and stamps soon after
 * this instance committed a write (`notifyCommitted`): at once when it has not
 * stamped for `spacingMs`, else when that much has passed since its last round. A stamp is a
 * transaction with its own COMMIT (an fsync); spaced, one round stamps the events of every write
 * committed meanwhile, instead of one round per write, for at most `spacingMs` of feed lag.
 */
export class EventStamper {
  private readonly wakeUp = new WakeUp();
  private stopped = false;
  private readonly loop: Promise<void>;
  private warned = false;
  private lastRoundMs = Number.NEGATIVE_INFINITY;
  private readonly poll: IdlePoll;

  constructor(
    private readonly database: Database,
    private readonly lease: LeaseKeeper,
    private readonly options: {
      readonly intervalMs: number;
      readonly idleIntervalMs: number;
      readonly spacingMs: number;
      readonly log: Logger;
      readonly onStamped?: () => void;
    },
  ) {
    this.poll = new IdlePoll(options.intervalMs, options.idleIntervalMs);
    this.loop = this.run();
  }

  /** Call after a COMMIT that appended events: they are stamped without waiting for the interval. */
  notifyCommitted(): void {
    this.wakeUp.poke();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const nudged = await this.wakeUp.wait(this.poll.waitMs);
      if (nudged) await this.spaced();
      if (this.stopped) break;
      let stamped = false;
      try {
        stamped = await this.stampAll(nudged);
        // The warning's other half: an operator who read it learns the feed moves again.
        if (this.warned) this.options.log.info("event stamping works again");
        this.warned = false;
      } catch (error) {
        if (!this.warned) this.options.log.warn({ err: error }, "event stamping failed; retrying");
        this.warned = true;
      }
      this.poll.record(nudged || stamped);
    }
  }

  /** Waits until `spacingMs` have passed since the last nudged round began. */
  private async spaced(): Promise<void> {
    const waitMs = this.lastRoundMs + this.options.spacingMs - Date.now();
    // Pokes meanwhile are kept by wakeUp: they are the events this round will stamp anyway.
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
    this.lastRoundMs = Date.now();
  }

  /** Stamps until nothing committed is left unstamped (or the lease is lost); whether it stamped any. */
  private async stampAll(nudged: boolean): Promise<boolean> {
    // The idle poll costs one index probe, not a transaction; a local commit has events for sure.
    if (!(await this.lease.held()) || (!nudged && !(await hasUnstamped(this.database.pool)))) return false;
    let any = false;
    while (!this.stopped && (await this.lease.held())) {
      const stamped = await stampCommittedEvents(this.database, { name: this.lease.name, owner: this.lease.owner }, EVENT_STAMP_BATCH);
      if (stamped === null || stamped === 0) return any;
      any = true;
      this.options.onStamped?.();
      if (stamped < EVENT_STAMP_BATCH) return any;
    }
    return any;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeUp.poke();
    await this.loop;
    await this.lease.release();
  }
}
