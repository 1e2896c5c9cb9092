/**
 * A sleep that ends early when poked: the loops of the event feed wait for their poll interval
 * or for news (a local commit, a stamp), whichever comes first. Pokes while awake are kept, so
 * news that arrives during a round is never lost.
 */
export class WakeUp {
  private pending = false;
  private wake: (() => void) | null = null;

  poke(): void {
    this.pending = true;
    this.wake?.();
  }

  /** Resolves after `ms` (false), or when poked (true), at once when poked since the last wait. */
  wait(ms: number): Promise<boolean> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const finish = (poked: boolean) => {
        clearTimeout(timer);
        this.wake = null;
        this.pending = false;
        resolve(poked);
      };
      const timer = setTimeout(() => finish(false), ms);
      this.wake = () => finish(true);
    });
  }
}
