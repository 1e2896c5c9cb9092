import { BillingError } from "../../errors/billing-error.js";
import { accountStatus, availableOf } from "../account-status.js";
import { minBig } from "../allocation.js";
import type { Command } from "../command.js";
import { envelopeOf, type IdempotencyEnvelope, outcomeToReplay, type StoredOutcome } from "../idempotency.js";
import type { AccountSnapshot, Balance } from "../types.js";
import type { LedgerLine, Planned } from "./planned.js";

/** VoidDeposit, as the transports parse it. */
export interface VoidRequest {
  readonly projectId: bigint;
  /** The caller's key, recorded on the VOID entry; not part of the fingerprint. */
  readonly apiKeyId: bigint | null;
  readonly customerId: string;
  /** The deposit's ledger entry id, as Deposit answered it. */
  readonly recordId: bigint;
  /** The void's own idempotency key (scope VOID). */
  readonly voidId: string;
  /** null: as much of the deposit as its account still has available. */
  readonly amount: bigint | null;
}

export interface VoidResult {
  readonly voidId: string;
  readonly recordId: bigint;
  readonly voidedAmount: bigint;
  readonly atMs: number;
  readonly balance: Balance;
  readonly isIdempotentReplay: boolean;
}

/** A DEPOSIT entry of the customer, as read under its lock. */
export interface DepositRecord {
  readonly id: bigint;
  readonly accountId: bigint;
  readonly amount: bigint;
}

/** What VoidDeposit reads under the customer's lock. */
export interface VoidState {
  readonly stored: StoredOutcome | null;
  /** null: no such customer. */
  readonly customerPk: bigint | null;
  /** null: no DEPOSIT entry of this customer with that id. */
  readonly record: DepositRecord | null;
  /** What earlier voids of the same deposit removed, in all. */
  readonly voided: bigint;
  /** The deposit's account, as the earlier writes of the list left it. */
  readonly account: AccountSnapshot | null;
  readonly before: Balance;
}

export interface VoidChanges {
  readonly customerPk: bigint;
  readonly record: DepositRecord;
  readonly amount: bigint;
  /** The VOID entry. */
  readonly entry: LedgerLine;
  readonly envelope: IdempotencyEnvelope;
}

export const voidEnvelope = (request: VoidRequest): IdempotencyEnvelope =>
  envelopeOf("VOID", request.voidId, { op: "VOID", customerId: request.customerId, recordId: request.recordId, amount: request.amount });

export type VoidCommand = Command<VoidRequest, IdempotencyEnvelope>;

/**
 * VoidDeposit: removes credits a deposit granted by mistake, from the deposit's own account. Never
 * more than the deposit added (less what earlier voids removed), never what is used or frozen, and
 * nothing of an expired account (its credits are gone already). A refusal is a thrown catalogue error.
 */
export function planVoid(state: VoidState, command: VoidCommand, nowMs: number): Planned<VoidChanges, VoidResult> {
  const { request, envelope } = command;
  const { record, account, customerPk } = state;
  const notFound = () => new BillingError("deposit_not_found", undefined, { record_id: request.recordId });
  if (customerPk === null) throw notFound();
  const replay = outcomeToReplay(state.stored, { customerId: request.customerId, ...envelope });
  if (replay) return { kind: "replay", stored: replay };
  if (record === null) throw notFound();
  if (account === null || account.id !== record.accountId) throw new Error(`the account of deposit ${record.id} was not read`);
  if (state.voided > record.amount) throw new Error(`deposit ${record.id} was voided beyond what it added`);
  const status = accountStatus(account, nowMs);
  const voidable = status === "EXPIRED" ? 0n : minBig(record.amount - state.voided, availableOf(account));
  // The same facts either way: the record, the amount asked for (when one was), what can be voided.
  const refused = () =>
    new BillingError("deposit_not_voidable", undefined, {
      record_id: record.id,
      ...(request.amount !== null && { requested: request.amount }),
      voidable: voidable > 0n ? voidable : 0n,
    });
  if (voidable <= 0n) throw refused();
  const amount = request.amount ?? voidable;
  if (amount > voidable) throw refused();
  const active = status === "ACTIVE";
  const total = active ? state.before.total - amount : state.before.total;
  return {
    kind: "apply",
    changes: {
      customerPk,
      record,
      amount,
      entry: { operation: "VOID", accountId: account.id, amount, creditType: account.creditType, source: account.source },
      envelope,
    },
    result: {
      voidId: request.voidId,
      recordId: record.id,
      voidedAmount: amount,
      atMs: nowMs,
      balance: { ...state.before, total, available: total - state.before.used - state.before.frozen },
      isIdempotentReplay: false,
    },
  };
}
