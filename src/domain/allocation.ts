import { BillingError } from "../errors/billing-error.js";
import { accountStatus, availableOf, compareSpendingOrder } from "./account-status.js";
import { ACCOUNTS_PER_CALL_MAX } from "./limits.js";
import type { AccountSnapshot, AllocationLine } from "./types.js";

export interface AllocationRequest {
  readonly accounts: readonly AccountSnapshot[];
  readonly amount: bigint;
  /** Empty: every credit type. */
  readonly creditTypes: readonly string[];
  readonly nowMs: number;
  /**
   * Available over the ACTIVE accounts of every type, when `accounts` holds only the selected
   * types' spendable ones (they must then be all of those whenever they fall short).
   */
  readonly availableAllTypes?: bigint;
}

/**
 * Spreads `amount` over the ACTIVE accounts of the selected credit types, soonest expiry first.
 * All or nothing: throws insufficient_balance (or ..._in_selected_credit_types when the other
 * types would have covered it), with `requested`, `available` and `wallet` facts; invalid_argument on
 * `amount` when covering it takes more than ACCOUNTS_PER_CALL_MAX accounts.
 */
export function allocate(request: AllocationRequest): AllocationLine[] {
  const { amount, creditTypes, nowMs } = request;
  const selected = new Set(creditTypes);
  const active = request.accounts.filter((a) => accountStatus(a, nowMs) === "ACTIVE");
  const candidates = active.filter((a) => selected.size === 0 || selected.has(a.creditType)).sort(compareSpendingOrder);

  const lines: AllocationLine[] = [];
  let remaining = amount;
  for (const account of candidates) {
    if (remaining === 0n) break;
    const take = minBig(availableOf(account), remaining);
    if (take <= 0n) continue;
    lines.push({ accountId: account.id, creditType: account.creditType, source: account.source, amount: take });
    remaining -= take;
  }
  if (remaining === 0n) {
    if (lines.length > ACCOUNTS_PER_CALL_MAX) {
      throw new BillingError(
        "invalid_argument",
        `The amount would be taken from more than ${ACCOUNTS_PER_CALL_MAX} accounts; spend it in smaller parts.`,
        { field: "amount", accounts_max: ACCOUNTS_PER_CALL_MAX },
      );
    }
    return lines;
  }

  const availableSelected = candidates.reduce((sum, a) => sum + availableOf(a), 0n);
  const availableAll = request.availableAllTypes ?? active.reduce((sum, a) => sum + availableOf(a), 0n);
  // `wallet` as Velobase reports it: the one credit type spent from, the selected ones joined by commas, or "*" for all.
  const facts = { requested: amount, available: availableSelected, wallet: creditTypes.length === 0 ? "*" : creditTypes.join(",") };
  if (selected.size > 0 && availableAll >= amount) {
    throw new BillingError("insufficient_balance_in_selected_credit_types", undefined, facts);
  }
  throw new BillingError("insufficient_balance", undefined, facts);
}

export function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
