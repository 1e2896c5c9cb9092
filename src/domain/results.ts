import type { AccountView, AllocationLine, Balance } from "./types.js";

/** What each operation answers; stored as-is for idempotent replays. Times are epoch ms. */

export interface DepositResult {
  readonly customerId: string;
  readonly account: AccountView;
  readonly addedAmount: bigint;
  readonly ledgerEntryId: bigint;
  readonly balance: Balance;
  readonly isIdempotentReplay: boolean;
}

/** Deduct and Freeze. */
export interface SpendResult {
  readonly transactionId: string;
  readonly amount: bigint;
  readonly details: readonly AllocationLine[];
  readonly atMs: number;
  readonly unfreezeAtMs: number | null;
  readonly consumeAtMs: number | null;
  readonly balance: Balance;
  readonly isIdempotentReplay: boolean;
}

export interface ConsumeResult {
  readonly transactionId: string;
  readonly consumedAmount: bigint;
  readonly returnedAmount: bigint;
  readonly overageAmount: bigint;
  readonly details: readonly AllocationLine[];
  readonly returnedDetails: readonly AllocationLine[];
  readonly atMs: number;
  readonly balance: Balance;
  readonly isIdempotentReplay: boolean;
}

export interface UnfreezeResult {
  readonly transactionId: string;
  readonly unfrozenAmount: bigint;
  readonly details: readonly AllocationLine[];
  readonly atMs: number;
  readonly balance: Balance;
  readonly isIdempotentReplay: boolean;
}
