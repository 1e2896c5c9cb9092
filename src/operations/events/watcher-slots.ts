import { BillingError } from "../../errors/billing-error.js";

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
  private readonly perKey = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: WatcherLimits) {}

  /** A slot for one stream of `key`, given back by calling what it returns; rate_limit_exceeded when either limit is reached. */
  take(key: string): () => void {
    const held = this.perKey.get(key) ?? 0;
    if (held >= this.limits.perKey) {
      throw new BillingError("rate_limit_exceeded", `At most ${this.limits.perKey} event streams may be open per API key.`, {
        open_streams_max: this.limits.perKey,
      });
    }
    if (this.total >= this.limits.total) {
      throw new BillingError("rate_limit_exceeded", "This instance serves as many event streams as it can; retry later.", {
        open_streams_max: this.limits.total,
      });
    }
    this.perKey.set(key, held + 1);
    this.total++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.total--;
      const left = (this.perKey.get(key) ?? 1) - 1;
      if (left === 0) this.perKey.delete(key);
      else this.perKey.set(key, left);
    };
  }
}
