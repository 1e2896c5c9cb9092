import { BillingError } from "../../errors/billing-error.js";
import { type AccountDelta, balanceAfter } from "../account-deltas.js";
import { minBig } from "../allocation.js";
import type { Command } from "../command.js";
import { envelopeOf, type IdempotencyEnvelope, outcomeToReplay, type StoredOutcome } from "../idempotency.js";
import type { Hold } from "../hold.js";
import type { AccountSnapshot, Balance, Metadata } from "../types.js";
import type { LedgerLine, Planned } from "./planned.js";

/** Refund, as the transports parse it. */
export interface RefundRequest {
  readonly projectId: bigint;
  /** The caller's key, recorded on the REFUND entries; not part of the fingerprint. */
  readonly apiKeyId: bigint | null;
  /** The refund's own idempotency key (scope REFUND). */
  readonly refundId: string;
  /** The charge: a Deduct, or a Freeze that was consumed. */
  readonly transactionId: string;
  /** Optional scope check: the charge must be this customer's. */
  readonly customerId: string | null;
  /** null: all that is still refundable. */
  readonly amount: bigint | null;
  readonly reason: string;
  readonly metadata: Metadata;
}

/** What went back to one account. `expired`: the account is past its expiry (or its expiry is on the ledger already), so nothing of it is spendable again. */
export interface RefundDetail {
  readonly accountId: bigint;
  readonly creditType: string;
  readonly source: string;
  readonly amount: bigint;
  readonly expired: boolean;
}

export interface RefundResult {
  readonly refundId: string;
  readonly transactionId: string;
  readonly refundedAmount: bigint;
  /** Back in accounts still unexpired. */
  readonly restoredAmount: bigint;
  /** Back in accounts past their expiry: expired at once (an EXPIRE entry) or by the sweeper's next pass. */
  readonly expiredAmount: bigint;
  readonly details: readonly RefundDetail[];
  readonly atMs: number;
  readonly balance: Balance;
  readonly isIdempotentReplay: boolean;
}

/** A charge (a Deduct, or a Freeze that was consumed) as read under its customer's lock: what a refund needs of its transaction. */
export interface Charge
  extends Pick<
    Hold,
    "pk" | "transactionId" | "customerPk" | "customerId" | "kind" | "status" | "amount" | "consumedAmount" | "businessType"
  > {
  /** What earlier refunds returned, in all. */
  readonly refundedAmount: bigint;
}

/** What the charge took from one account (its DEDUCT or CONSUME entries, overage included) and what earlier refunds gave back to it. */
export interface ChargedPart {
  readonly accountId: bigint;
  readonly charged: bigint;
  readonly refunded: bigint;
}

/** What Refund reads under the lock of the charge's customer. */
export interface RefundState {
  readonly stored: StoredOutcome | null;
  /** null: no such transaction in the caller's project. */
  readonly charge: Charge | null;
  readonly parts: readonly ChargedPart[];
  /** The accounts of the parts (by id), as the earlier writes of the list left them. */
  readonly accounts: ReadonlyMap<bigint, AccountSnapshot>;
  /** Accounts whose expiry is on the ledger already: what a refund returns to them expires at once. */
  readonly expiryRecorded: ReadonlySet<bigint>;
  readonly before: Balance;
}

export interface RefundChanges {
  readonly charge: Charge;
  readonly amount: bigint;
  readonly deltas: readonly AccountDelta[];
  /** REFUND entries, one per account. */
  readonly entries: readonly LedgerLine[];
  /** EXPIRE entries for what went back to accounts whose expiry was already recorded. */
  readonly expiring: readonly LedgerLine[];
  readonly envelope: IdempotencyEnvelope;
}

/** The envelope of a Refund: everything the caller sent but the key and who sent it. */
export const refundEnvelope = (request: RefundRequest): IdempotencyEnvelope =>
  envelopeOf("REFUND", request.refundId, {
    op: "REFUND",
    transactionId: request.transactionId,
    customerId: request.customerId,
    amount: request.amount,
    reason: request.reason,
    metadata: request.metadata,
  });

export type RefundCommand = Command<RefundRequest, IdempotencyEnvelope>;

/** The charged amount of a charge: a Deduct's amount, a consumed Freeze's actual amount (overage included). */
export const chargedAmountOf = (charge: Pick<Charge, "kind" | "amount" | "consumedAmount">): bigint =>
  charge.kind === "DEDUCT" ? charge.amount : charge.consumedAmount;

/**
 * Refund: credits go back to the accounts the charge took them from, each at most what it gave
 * minus what earlier refunds returned to it; for a partial refund the latest-expiring first
 * (never-expiring before any dated one, then the newest, then the highest id: the reverse of
 * spending order), so what comes back stays spendable longest. An account whose expiry the sweeper
 * already recorded gets its part and an EXPIRE entry of it at once; one past its expiry but not
 * yet recorded gets it for the sweeper's EXPIRE to take. A refusal is a thrown catalogue error.
 */
export function planRefund(state: RefundState, command: RefundCommand, nowMs: number): Planned<RefundChanges, RefundResult> {
  const { request, envelope } = command;
  const { charge } = state;
  if (charge === null) throw new BillingError("transaction_not_found", undefined, { transaction_id: request.transactionId });
  if (request.customerId !== null && charge.customerId !== request.customerId) {
    throw new BillingError("customer_scope_mismatch", undefined, { customer_id: request.customerId });
  }
  const replay = outcomeToReplay(state.stored, { customerId: charge.customerId, ...envelope });
  if (replay) return { kind: "replay", stored: replay };
  if (charge.kind === "FREEZE" && charge.status !== "CONSUMED") {
    throw new BillingError("transaction_not_refundable", undefined, { transaction_id: charge.transactionId, status: charge.status });
  }
  checkChargeRecords(charge, state.parts);
  const refundable = state.parts.reduce((sum, p) => sum + p.charged - p.refunded, 0n);
  if (request.amount === null && refundable === 0n) {
    throw new BillingError("transaction_not_refundable", undefined, { transaction_id: charge.transactionId, refundable: 0n });
  }
  const amount = request.amount ?? refundable;
  if (amount > refundable) throw new BillingError("refund_exceeds_refundable", undefined, { requested: amount, refundable });
  const lines = spreadRefund(state, amount);
  // Recorded (by this list, or by an instance whose clock runs ahead) or past: as the entries say.
  const expired = (a: AccountSnapshot) => state.expiryRecorded.has(a.id) || a.expiresAtMs <= nowMs;
  const details: RefundDetail[] = lines.map(({ account, amount: part }) => ({
    accountId: account.id,
    creditType: account.creditType,
    source: account.source,
    amount: part,
    expired: expired(account),
  }));
  const deltas: AccountDelta[] = details.map((d) => ({ accountId: d.accountId, used: -d.amount, frozen: 0n }));
  const line = (operation: "REFUND" | "EXPIRE", d: RefundDetail): LedgerLine => ({
    operation,
    accountId: d.accountId,
    amount: d.amount,
    creditType: d.creditType,
    source: d.source,
  });
  const expiredAmount = details.filter((d) => d.expired).reduce((sum, d) => sum + d.amount, 0n);
  return {
    kind: "apply",
    changes: {
      charge,
      amount,
      deltas,
      entries: details.map((d) => line("REFUND", d)),
      // Credits returned to an account whose leftover is already on the ledger as expired would
      // be available again in an expired account: they expire at once, with their own entry.
      expiring: details.filter((d) => state.expiryRecorded.has(d.accountId)).map((d) => line("EXPIRE", d)),
      envelope,
    },
    result: {
      refundId: request.refundId,
      transactionId: charge.transactionId,
      refundedAmount: amount,
      restoredAmount: amount - expiredAmount,
      expiredAmount,
      details,
      atMs: nowMs,
      balance: balanceAfter(state.before, [...state.accounts.values()], deltas, nowMs),
      isIdempotentReplay: false,
    },
  };
}

/** The parts must add up to what the charge took and what its refunds gave back; an account must still hold what it gave. */
function checkChargeRecords(charge: Charge, parts: readonly ChargedPart[]): void {
  const charged = parts.reduce((sum, p) => sum + p.charged, 0n);
  const refunded = parts.reduce((sum, p) => sum + p.refunded, 0n);
  if (charged !== chargedAmountOf(charge) || refunded !== charge.refundedAmount || parts.some((p) => p.refunded > p.charged)) {
    throw new Error(`the ledger entries of transaction ${charge.pk} disagree with it`);
  }
}

/** Latest expiry first, then newest, then highest id: the reverse of spending order. */
function compareRefundOrder(a: AccountSnapshot, b: AccountSnapshot): number {
  if (a.expiresAtMs !== b.expiresAtMs) return a.expiresAtMs > b.expiresAtMs ? -1 : 1;
  if (a.createdAtMs !== b.createdAtMs) return a.createdAtMs > b.createdAtMs ? -1 : 1;
  if (a.id === b.id) return 0;
  return a.id > b.id ? -1 : 1;
}

function spreadRefund(state: RefundState, amount: bigint): { account: AccountSnapshot; amount: bigint }[] {
  const withAccounts = state.parts.map((p) => {
    const account = state.accounts.get(p.accountId);
    if (!account) throw new Error(`account ${p.accountId} of a charge was not read`);
    return { part: p, account };
  });
  withAccounts.sort((x, y) => compareRefundOrder(x.account, y.account));
  const lines: { account: AccountSnapshot; amount: bigint }[] = [];
  let left = amount;
  for (const { part, account } of withAccounts) {
    const take = minBig(left, part.charged - part.refunded);
    if (take <= 0n) continue;
    if (account.used < take) throw new Error(`account ${account.id} holds less used credit than a charge took from it`);
    lines.push({ account, amount: take });
    left -= take;
  }
  return lines;
}
