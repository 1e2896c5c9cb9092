import { BillingError } from "../../errors/billing-error.js";
import { HeldCounts } from "../../tenancy/held-counts.js";

export interface WatcherLimits {
  /** Event streams one API key may hold open on one instance (EVENTS_WATCHERS_PER_KEY_MAX). */
  readonly perKey: number;
  /** Event streams one instance serves in all (EVENTS_WATCHERS_MAX). */
  readonly total: number;
}

/**
 * The event streams open on this instance. Every watcher reads the feed each time it moves,
 * however few of its events it matches, so their number is what they cost: without a bound, one
 * key's thousand streams slowed every other caller's writes to seconds.
 */
export class WatcherSlots {
  private readonly held = new HeldCounts();

  constructor(private readonly limits: WatcherLimits) {}

  /** A slot for one stream of `key`, given back by calling what it returns; rate_limit_exceeded when either limit is reached. */
  take(key: string): () => void {
    if (this.held.of(key) >= this.limits.perKey) {
      throw new BillingError("rate_limit_exceeded", `At most ${this.limits.perKey} event streams may be open per API key.`, {
        open_streams_max: this.limits.perKey,
      });
    }
    if (this.held.total >= this.limits.total) {
      throw new BillingError("rate_limit_exceeded", "This instance serves as many event streams as it can; retry later.", {
        open_streams_max: this.limits.total,
      });
    }
    return this.held.hold(key);
  }
}
