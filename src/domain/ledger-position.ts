import type { LedgerLine } from "./plans/planned.js";
import type { Balance } from "./types.js";

/**
 * A customer's place in its ledger: the last entry's `sequence` and the balance it left
 * (balance_after). The balance is the ledger's: total, used and frozen summed over every account
 * whose credits no EXPIRE entry has removed. It follows from the entries alone, so a future
 * `starts_at`, or an expiry the sweeper has not recorded yet, does not change it.
 */
export interface LedgerPosition {
  readonly sequence: bigint;
  readonly total: bigint;
  readonly used: bigint;
  readonly frozen: bigint;
}

export const LEDGER_START: LedgerPosition = { sequence: 0n, total: 0n, used: 0n, frozen: 0n };

/** An account's figures just before an entry, and whether an EXPIRE entry already removed it. */
export interface EntryAccount {
  readonly total: bigint;
  readonly used: bigint;
  readonly frozen: bigint;
  readonly removed: boolean;
}

/**
 * The position after one entry. An entry on a removed account moves only the sequence. The first
 * EXPIRE of an account removes all of it (what was used, frozen and left); the others move the
 * figures as the ledger equations say: DEPOSIT adds to total; DEDUCT and CONSUME to used; FREEZE
 * to frozen; CONSUME (not overage) and UNFREEZE take from frozen; REFUND takes from used; VOID
 * from total.
 */
export function nextPosition(position: LedgerPosition, entry: LedgerLine, account: EntryAccount | null): LedgerPosition {
  const sequence = position.sequence + 1n;
  if (account?.removed) return { ...position, sequence };
  const amount = entry.amount;
  switch (entry.operation) {
    case "DEPOSIT":
      return { ...position, sequence, total: position.total + amount };
    case "DEDUCT":
      return { ...position, sequence, used: position.used + amount };
    case "FREEZE":
      return { ...position, sequence, frozen: position.frozen + amount };
    case "CONSUME":
      return { ...position, sequence, used: position.used + amount, frozen: position.frozen - (entry.overage ? 0n : amount) };
    case "UNFREEZE":
      return { ...position, sequence, frozen: position.frozen - amount };
    case "REFUND":
      return { ...position, sequence, used: position.used - amount };
    case "VOID":
      return { ...position, sequence, total: position.total - amount };
    case "EXPIRE": {
      if (!account) throw new Error("an expiry's account was not read");
      return {
        sequence,
        total: position.total - account.total,
        used: position.used - account.used,
        frozen: position.frozen - account.frozen,
      };
    }
  }
}

export const balanceOfPosition = (p: LedgerPosition): Balance => ({
  total: p.total,
  used: p.used,
  frozen: p.frozen,
  available: p.total - p.used - p.frozen,
});
