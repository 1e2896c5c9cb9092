/**
 * How many of something each key holds at once (connections per client address, event streams
 * per API key). A key holding nothing is forgotten, so the map stays as large as what is held.
 */
export class HeldCounts {
  private readonly counts = new Map<string, number>();
  private all = 0;

  /** What `key` holds now. */
  of(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** What every key holds together. */
  get total(): number {
    return this.all;
  }

  /** One more for `key`, given back by calling what it returns (once; later calls do nothing). */
  hold(key: string): () => void {
    this.counts.set(key, this.of(key) + 1);
    this.all++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.all--;
      const left = this.of(key) - 1;
      if (left > 0) this.counts.set(key, left);
      else this.counts.delete(key);
    };
  }
}
