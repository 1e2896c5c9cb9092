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

  /** Resolves after `ms`, or at once when poked since the last wait. */
  wait(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.wake = null;
        self.pending = false;
        resolve();
      }
      this.wake = done;
    });
  }
}
