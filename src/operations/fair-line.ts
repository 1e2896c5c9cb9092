import { waitInLine } from "./waiting-line.js";

/**
 * A waiting line taken in turns by tenant: each tenant's items keep their order, and a take goes
 * round the tenants, one item each per round, starting after the tenant it last took from. So one
 * tenant's burst (thousands of calls in line) does not make another tenant's next call wait
 * behind all of it. A tenant holds at most `perTenantMax` places; a caller that leaves (its
 * signal aborts) gives its place back at once.
 */
export class FairLine<T> {
  /** Per tenant, its items in order; the map's order is the turn order. */
  private readonly lines = new Map<string, T[]>();
  private size = 0;

  constructor(readonly perTenantMax: number) {}

  get length(): number {
    return this.size;
  }

  /** Items `tenant` has in line. */
  countOf(tenant: string): number {
    return this.lines.get(tenant)?.length ?? 0;
  }

  /**
   * Puts `item` last in `tenant`'s line. If `signal` aborts while it is still there, it is taken
   * out and `left` runs. What it returns stops watching, for an item taken otherwise.
   */
  push(tenant: string, item: T, signal: AbortSignal | undefined, left: () => void): () => void {
    // A caller gone already takes no place (an abort listener added now would never fire).
    if (signal?.aborted) {
      left();
      return () => {};
    }
    let line = this.lines.get(tenant);
    if (!line) {
      line = [];
      this.lines.set(tenant, line);
    }
    this.size++;
    const own = line;
    return waitInLine(own, item, signal, () => {
      this.size--;
      if (own.length === 0 && this.lines.get(tenant) === own) this.lines.delete(tenant);
      left();
    });
  }

  /** Up to `n` items, one per tenant per round; a tenant taken from goes to the end of the turn order. */
  take(n: number): T[] {
    if (this.lines.size === 1) return this.takeFromOnly(n);
    const taken: T[] = [];
    while (taken.length < n && this.size > 0) {
      for (const tenant of [...this.lines.keys()]) {
        if (taken.length >= n) break;
        const line = this.lines.get(tenant);
        const item = line?.shift();
        if (!line || item === undefined) continue;
        taken.push(item);
        this.size--;
        this.lines.delete(tenant);
        if (line.length > 0) this.lines.set(tenant, line);
      }
    }
    return taken;
  }

  /** The first `n` of the one tenant in line. */
  private takeFromOnly(n: number): T[] {
    const [only] = this.lines;
    if (!only) return [];
    const [tenant, line] = only;
    const taken = line.splice(0, n);
    this.size -= taken.length;
    if (line.length === 0) this.lines.delete(tenant);
    return taken;
  }
}
