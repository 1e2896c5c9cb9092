import { NO_EXPIRY_MS, NO_START_MS } from "./limits.js";
import type { AccountSnapshot, AccountStatus, AccountView, Balance } from "./types.js";

/**
 * EXPIRED once its expiry is recorded (whatever this clock says) or at or after expires_at (expiry
 * at exactly now counts); PENDING before starts_at.
 */
export function accountStatus(account: AccountSnapshot, nowMs: number): AccountStatus {
  if (account.expiryRecorded) return "EXPIRED";
  if (account.startsAtMs > nowMs) return "PENDING";
  if (account.expiresAtMs <= nowMs) return "EXPIRED";
  return "ACTIVE";
}

export function availableOf(account: AccountSnapshot): bigint {
  return account.total - account.used - account.frozen;
}

/** The balance of a customer with no accounts (or none yet). */
export const NO_BALANCE: Balance = { total: 0n, used: 0n, frozen: 0n, available: 0n };

/** Sum of the ACTIVE accounts only: pending and expired credits are not spendable. */
export function balanceOf(accounts: readonly AccountSnapshot[], nowMs: number): Balance {
  let total = 0n;
  let used = 0n;
  let frozen = 0n;
  for (const account of accounts) {
    if (accountStatus(account, nowMs) !== "ACTIVE") continue;
    total += account.total;
    used += account.used;
    frozen += account.frozen;
  }
  return { total, used, frozen, available: total - used - frozen };
}

export function accountView(account: AccountSnapshot, nowMs: number): AccountView {
  return {
    id: account.id,
    creditType: account.creditType,
    source: account.source,
    startsAtMs: account.startsAtMs === NO_START_MS ? null : account.startsAtMs,
    expiresAtMs: account.expiresAtMs === NO_EXPIRY_MS ? null : account.expiresAtMs,
    total: account.total,
    used: account.used,
    frozen: account.frozen,
    available: availableOf(account),
    status: accountStatus(account, nowMs),
  };
}

/** Spending order: soonest expiry first (never-expiring last), then oldest, then lowest id. */
export function compareSpendingOrder(a: AccountSnapshot, b: AccountSnapshot): number {
  if (a.expiresAtMs !== b.expiresAtMs) return a.expiresAtMs < b.expiresAtMs ? -1 : 1;
  if (a.createdAtMs !== b.createdAtMs) return a.createdAtMs < b.createdAtMs ? -1 : 1;
  if (a.id === b.id) return 0;
  return a.id < b.id ? -1 : 1;
}
