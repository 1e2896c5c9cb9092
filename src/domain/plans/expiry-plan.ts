import { availableOf } from "../account-status.js";
import type { AccountSnapshot } from "../types.js";
import type { LedgerLine } from "./planned.js";

/** The sweeper's record of an expired account: what was left in it, and the mark that it is recorded. */
export interface ExpiryChanges {
  readonly projectId: bigint;
  readonly customerPk: bigint;
  readonly accountId: bigint;
  /** The EXPIRE entry of what was left available, even nothing: it removes the account from balance_after. */
  readonly entries: readonly LedgerLine[];
}

/**
 * Records, once, what an expired account still held: an EXPIRE entry for its available credits.
 * Its figures do not change (the ledger equations hold); the entry tells the customer's history
 * where those credits went.
 */
export function planExpiry(projectId: bigint, customerPk: bigint, account: AccountSnapshot): ExpiryChanges {
  const left = availableOf(account);
  const entries: LedgerLine[] = [
    { operation: "EXPIRE", accountId: account.id, amount: left, creditType: account.creditType, source: account.source },
  ];
  return { projectId, customerPk, accountId: account.id, entries };
}
