import type { Database } from "../../store/database.js";
import { releaseLease, tryAcquireLease } from "../../store/leases-store.js";
import { EVENT_LEASE_TTL_MS } from "../../domain/limits.js";

/**
 * One elected singleton's lease: `held()` says whether this instance may act, renewing (or
 * trying to take) the lease once a third of its lifetime has passed since the last try. A try
 * the database did not answer throws (the caller does not act, and says the database failed,
 * not that another instance holds the lease) and is made again at the next call.
 */
export class LeaseKeeper {
  private holding = false;
  private lastTryMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly database: Database,
    readonly name: string,
    readonly owner: string,
    private readonly ttlMs: number = EVENT_LEASE_TTL_MS,
  ) {}

  async held(): Promise<boolean> {
    const now = Date.now();
    if (now - this.lastTryMs >= this.ttlMs / 3) {
      try {
        this.holding = await tryAcquireLease(this.database.pool, this.name, this.owner, this.ttlMs);
        this.lastTryMs = now;
      } catch (error) {
        // Unknown whether it is still ours: not acting is safe; the next call asks again.
        this.holding = false;
        throw error;
      }
    }
    return this.holding;
  }

  async release(): Promise<void> {
    if (this.holding) await releaseLease(this.database.pool, this.name, this.owner).catch(() => undefined);
    this.holding = false;
  }
}
