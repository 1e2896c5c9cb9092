import { LEDGER_COUNTS_REMEMBERED } from "../domain/limits.js";

/** How many entries of one customer match one filter, up to a ledger position. */
export interface CountThrough {
  /** The customer's ledger position (its last sequence) the count goes up to, inclusive. */
  readonly through: bigint;
  readonly count: number;
}

/**
 * The filtered counts this instance last made, per customer and filter (HTTP's `total_count`).
 * Entries are never changed, and every entry up to a committed ledger position is committed with
 * it, so a count up to a position stays right for good: the next page of the same filter counts
 * only the entries after it. Paging a filter through a ledger so counts it once, not once a page.
 * The oldest are forgotten past LEDGER_COUNTS_REMEMBERED.
 */
export class LedgerCounts {
  private readonly counts = new Map<string, CountThrough>();

  constructor(private readonly max: number = LEDGER_COUNTS_REMEMBERED) {}

  known(key: string): CountThrough | undefined {
    return this.counts.get(key);
  }

  remember(key: string, count: CountThrough): void {
    const known = this.counts.get(key);
    // A count up to an older position (a slower request of the same filter) is not kept over a newer one.
    if (known && known.through > count.through) return;
    this.counts.delete(key);
    this.counts.set(key, count);
    if (this.counts.size > this.max) {
      const oldest = this.counts.keys().next();
      if (!oldest.done) this.counts.delete(oldest.value);
    }
  }
}
