import { accountStatus, accountView } from "../account-status.js";
import { BillingError } from "../../errors/billing-error.js";
import { checkCustomerTotal } from "../customer-limit.js";
import { type Command, wholeRequestEnvelope } from "../command.js";
import { type IdempotencyEnvelope, outcomeToReplay, type StoredOutcome } from "../idempotency.js";
import { NO_EXPIRY_MS, NO_START_MS } from "../limits.js";
import type { DepositRequest } from "../requests.js";
import type { DepositResult } from "../results.js";
import type { AccountSnapshot, Balance } from "../types.js";
import { checkValidityWindow } from "../validation.js";
import type { Planned } from "./planned.js";

/** What a deposit reads under its customer's lock (the customer is created first when new). */
export interface DepositState {
  readonly stored: StoredOutcome | null;
  readonly customerPk: bigint;
  /** The customer's balance over its ACTIVE accounts. */
  readonly before: Balance;
  /** The customer's ledger total before the deposit: credits no EXPIRE entry has removed, what every balance sums. */
  readonly ledgerTotal: bigint;
  /** The account with the deposit's key, when it exists already. */
  readonly account: AccountSnapshot | null;
}

/** The account a deposit lands in: one per (credit type, source, validity window). */
export interface AccountKey {
  readonly creditType: string;
  readonly source: string;
  readonly startsAtMs: number;
  readonly expiresAtMs: number;
}

export interface DepositChanges {
  readonly customerPk: bigint;
  readonly accountKey: AccountKey;
  /** null: the credit creates the account (its id is known once written). */
  readonly accountId: bigint | null;
  readonly amount: bigint;
  readonly envelope: IdempotencyEnvelope | null;
}

/**
 * Ids known only once the deposit is written stand in the planned response as these values
 * (never an id or an amount: both are positive) until `withWrittenIds` puts the real ones in.
 */
export const PENDING_ACCOUNT_ID = -1n;
export const PENDING_LEDGER_ENTRY_ID = -2n;

/** The envelope of a keyed deposit: what the request asks, without the key. */
export const depositEnvelope = (request: DepositRequest): IdempotencyEnvelope | null =>
  request.idempotencyKey === null ? null : wholeRequestEnvelope("DEPOSIT", request.idempotencyKey, "deposit", request, "idempotencyKey");

/** A deposit with its envelope (none without a key). */
export type DepositCommand = Command<DepositRequest, IdempotencyEnvelope | null>;

export const accountKeyOf = (request: DepositRequest): AccountKey => ({
  creditType: request.creditType,
  source: request.source,
  startsAtMs: request.startsAtMs ?? NO_START_MS,
  expiresAtMs: request.expiresAtMs ?? NO_EXPIRY_MS,
});

/** An account key as one string, for sets of keys. */
export const accountKeyText = (key: AccountKey): string => JSON.stringify([key.creditType, key.source, key.startsAtMs, key.expiresAtMs]);

/**
 * Deposit: the replay check first (a retry replays even once its expires_at has passed), then the
 * validity window and the customer's ledger total (so every balance stays encodable).
 */
export function planDeposit(state: DepositState, command: DepositCommand, nowMs: number): Planned<DepositChanges, DepositResult> {
  const { request, envelope } = command;
  const replay = envelope === null ? null : outcomeToReplay(state.stored, { customerId: request.customerId, ...envelope });
  if (replay) return { kind: "replay", stored: replay };
  checkValidityWindow(request, nowMs);
  // Its account's expiry already on the ledger (by an instance whose clock runs ahead): expired.
  if (state.account?.expiryRecorded) {
    throw new BillingError("invalid_expires_at", "expires_at must be in the future.", { field: "expires_at" });
  }
  checkCustomerTotal(state.ledgerTotal, request.amount);
  const key = accountKeyOf(request);
  const credited: AccountSnapshot = state.account
    ? { ...state.account, total: state.account.total + request.amount }
    : { id: PENDING_ACCOUNT_ID, ...key, total: request.amount, used: 0n, frozen: 0n, createdAtMs: nowMs, expiryRecorded: false };
  const { before } = state;
  const balance =
    accountStatus(credited, nowMs) === "ACTIVE"
      ? { ...before, total: before.total + request.amount, available: before.available + request.amount }
      : before;
  return {
    kind: "apply",
    changes: { customerPk: state.customerPk, accountKey: key, accountId: state.account?.id ?? null, amount: request.amount, envelope },
    result: {
      customerId: request.customerId,
      account: accountView(credited, nowMs),
      addedAmount: request.amount,
      ledgerEntryId: PENDING_LEDGER_ENTRY_ID,
      balance,
      isIdempotentReplay: false,
    },
  };
}

/** The planned response with the ids the write produced. */
export const withWrittenIds = (result: DepositResult, ids: { accountId: bigint; ledgerEntryId: bigint }): DepositResult => ({
  ...result,
  account: { ...result.account, id: ids.accountId },
  ledgerEntryId: ids.ledgerEntryId,
});
