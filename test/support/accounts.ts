import { NO_EXPIRY_MS, NO_START_MS } from "../../src/domain/limits.js";
import type { AccountSnapshot } from "../../src/domain/types.js";

/**
 * An account snapshot for pure tests: 100 credits of `default`/`default`, nothing used or frozen,
 * active from the start of time to its end, created at 0, its expiry not recorded; `over` changes any of it.
 */
export function account(id: bigint, over: Partial<AccountSnapshot> = {}): AccountSnapshot {
  return {
    id,
    creditType: "default",
    source: "default",
    startsAtMs: NO_START_MS,
    expiresAtMs: NO_EXPIRY_MS,
    total: 100n,
    used: 0n,
    frozen: 0n,
    createdAtMs: 0,
    expiryRecorded: false,
    ...over,
  };
}
