import type { AccountSnapshot } from "./types.js";

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

/** The accounts as they will be once the deltas are written. */
export function applyDeltas(accounts: readonly AccountSnapshot[], deltas: readonly AccountDelta[]): AccountSnapshot[] {
  const byId = new Map(mergeDeltas(deltas).map((d) => [d.accountId, d]));
  return accounts.map((a) => {
    const d = byId.get(a.id);
    return d ? { ...a, used: a.used + d.used, frozen: a.frozen + d.frozen } : a;
  });
}
