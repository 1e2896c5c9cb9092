import { accountStatus } from "./account-status.js";
import type { AccountSnapshot, Balance } from "./types.js";

/** A change to one account's used and frozen figures. */
export interface AccountDelta {
  readonly accountId: bigint;
  readonly used: bigint;
  readonly frozen: bigint;
}

/** Merges changes so each account appears once, in first-seen order. */
export function mergeDeltas(deltas: readonly AccountDelta[]): AccountDelta[] {
  const merged = new Map<bigint, AccountDelta>();
  for (const d of deltas) {
    const prev = merged.get(d.accountId);
    merged.set(d.accountId, prev ? { accountId: d.accountId, used: prev.used + d.used, frozen: prev.frozen + d.frozen } : d);
  }
  return [...merged.values()];
}

/**
 * The customer's balance once the deltas are written, from the balance before them: only the
 * deltas of ACTIVE accounts count (a hold settled on an expired account changes no balance).
 */
export function balanceAfter(
  before: Balance,
  accounts: readonly AccountSnapshot[],
  deltas: readonly AccountDelta[],
  nowMs: number,
): Balance {
  const active = new Set(accounts.filter((a) => accountStatus(a, nowMs) === "ACTIVE").map((a) => a.id));
  let { used, frozen } = before;
  for (const d of deltas) {
    if (!active.has(d.accountId)) continue;
    used += d.used;
    frozen += d.frozen;
  }
  return { total: before.total, used, frozen, available: before.total - used - frozen };
}
