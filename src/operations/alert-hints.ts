import { type CustomerRef, customerKey } from "../domain/customer-ref.js";
import { ALERT_HINTS_MAX } from "../domain/limits.js";
import type { ListState } from "../domain/plans/write-list.js";

/**
 * The customers this instance last found with balance alerts, so that their writes read the
 * alerts in the prefetch's own round trip instead of one more. A guess, never a decision: the
 * `has_alerts` flag read under the customer's lock decides, and a wrong guess costs one read (a
 * customer that lost its alerts) or one round trip (alerts set through another instance).
 */
export class AlertHints {
  private readonly withAlerts = new Set<string>();

  constructor(private readonly max: number = ALERT_HINTS_MAX) {}

  readonly likely = (ref: CustomerRef): boolean => this.withAlerts.has(customerKey(ref));

  /** What a prefetch found under the customers' locks. */
  learn(state: ListState): void {
    for (const c of state.customers.values()) {
      const key = customerKey(c.ref);
      if (!c.hasAlerts) {
        this.withAlerts.delete(key);
        continue;
      }
      if (this.withAlerts.size >= this.max) this.withAlerts.clear();
      this.withAlerts.add(key);
    }
  }
}
