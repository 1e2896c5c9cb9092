import { BillingError } from "../errors/billing-error.js";

/** Made-up keys one address may present per second before its unknown keys go unlooked-up. */
export const UNKNOWN_KEYS_PER_PEER_PER_SECOND = 20;
const WINDOW_MS = 1_000;
/** Addresses remembered at once; past it, those whose window ended are forgotten. */
const PEERS_MAX = 10_000;

/**
 * Counts, per client address, the look-ups of keys this instance has not seen that found no
 * project. A flood of made-up keys (each new, so no cache can answer it) would otherwise cost a
 * database look-up apiece and slow every other caller (1,480 a second took a canary's p50 from 6
 * to 278 ms). A look-up counts from when it starts, so many in flight at once are bounded too,
 * and is taken back when it finds a key: a busy client with real keys is never counted.
 */
export class PeerFailures {
  private readonly windows = new Map<string, { startMs: number; count: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Counts a look-up the client at `address` is about to make; throws rate_limit_exceeded when
   * this second has had its share.
   */
  take(address: string): void {
    const nowMs = this.now();
    const window = this.windows.get(address);
    if (window && nowMs - window.startMs < WINDOW_MS) {
      if (window.count >= UNKNOWN_KEYS_PER_PEER_PER_SECOND) {
        const retryDelayMs = Math.max(1, window.startMs + WINDOW_MS - nowMs);
        throw new BillingError(
          "rate_limit_exceeded",
          "Too many unknown API keys from this address; retry later.",
          { unknown_keys_per_second: UNKNOWN_KEYS_PER_PEER_PER_SECOND, retry_delay_ms: retryDelayMs },
          { retryDelayMs },
        );
      }
      window.count++;
      return;
    }
    if (this.windows.size >= PEERS_MAX) {
      for (const [key, w] of this.windows) if (nowMs - w.startMs >= WINDOW_MS) this.windows.delete(key);
    }
    if (this.windows.size < PEERS_MAX) this.windows.set(address, { startMs: nowMs, count: 1 });
  }

  /** The look-up found a key: it does not count against `address`. */
  found(address: string): void {
    const window = this.windows.get(address);
    if (window && window.count > 0) window.count--;
  }
}
