import { BillingError } from "../../errors/billing-error.js";
import { HeldCounts } from "../../tenancy/held-counts.js";

export interface WatcherLimits {
  /** Event streams one API key may hold open on one instance (EVENTS_WATCHERS_PER_KEY_MAX). */
  readonly perKey: number;
  /** Event streams one project's keys may hold open on one instance together (EVENTS_WATCHERS_PER_PROJECT_MAX). */
  readonly perProject: number;
  /** Event streams one instance serves in all (EVENTS_WATCHERS_MAX). */
  readonly total: number;
}

/**
 * The event streams open on this instance. Every watcher reads the feed each time it moves,
 * however few of its events it matches, so their number is what they cost: without a bound, one
 * key's thousand streams slowed every other caller's writes to seconds.
 */
export class WatcherSlots {
  private readonly byKey = new HeldCounts();
  private readonly byProject = new HeldCounts();

  constructor(private readonly limits: WatcherLimits) {}

  /**
   * A slot for one stream of `key` (of `project`), given back by calling what it returns;
   * rate_limit_exceeded when a limit is reached. The project's bound keeps one tenant, however
   * many keys it makes, from taking every stream an instance serves.
   */
  take(project: string, key: string): () => void {
    if (this.byKey.of(key) >= this.limits.perKey) {
      throw new BillingError("rate_limit_exceeded", `At most ${this.limits.perKey} event streams may be open per API key.`, {
        open_streams_max: this.limits.perKey,
      });
    }
    if (this.byProject.of(project) >= this.limits.perProject) {
      throw new BillingError(
        "rate_limit_exceeded",
        `At most ${this.limits.perProject} event streams may be open per project on an instance.`,
        {
          open_streams_max: this.limits.perProject,
        },
      );
    }
    if (this.byKey.total >= this.limits.total) {
      throw new BillingError("rate_limit_exceeded", "This instance serves as many event streams as it can; retry later.", {
        open_streams_max: this.limits.total,
      });
    }
    const keyBack = this.byKey.hold(key);
    const projectBack = this.byProject.hold(project);
    return () => {
      keyBack();
      projectBack();
    };
  }
}
