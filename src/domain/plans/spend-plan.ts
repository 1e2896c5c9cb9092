import { type AccountDelta, balanceAfter } from "../account-deltas.js";
import { availableOf } from "../account-status.js";
import { allocate } from "../allocation.js";
import { BillingError } from "../../errors/billing-error.js";
import { type Command, wholeRequestEnvelope } from "../command.js";
import { type IdempotencyEnvelope, outcomeToReplay, type StoredOutcome } from "../idempotency.js";
import type { FreezeRequest } from "../requests.js";
import type { SpendResult } from "../results.js";
import type { AccountSnapshot, AllocationLine, AutoAction, Balance, TransactionKind } from "../types.js";
import type { Planned } from "./planned.js";

/** What Deduct and Freeze read under the customer's lock. */
export interface SpendState {
  readonly stored: StoredOutcome | null;
  /** null: no such customer. */
  readonly customerPk: bigint | null;
  /** Spendable accounts of the selected types, in spending order. */
  readonly accounts: readonly AccountSnapshot[];
  /** False when only the first ones were read (SPEND_ACCOUNTS_LOCKED_FIRST). */
  readonly complete: boolean;
  readonly before: Balance;
}

export interface SpendChanges {
  readonly kind: TransactionKind;
  readonly customerPk: bigint;
  readonly lines: readonly AllocationLine[];
  readonly deltas: readonly AccountDelta[];
  readonly autoAction: AutoAction | null;
  readonly autoAtMs: number | null;
  readonly envelope: IdempotencyEnvelope;
}

/** The envelope of a Deduct or Freeze: what the request asks, its transaction id included. */
export const spendEnvelope = (kind: TransactionKind, request: FreezeRequest): IdempotencyEnvelope =>
  wholeRequestEnvelope("SPEND", request.transactionId, kind, request);

export type SpendCommand = Command<FreezeRequest, IdempotencyEnvelope>;

const totalAvailable = (accounts: readonly AccountSnapshot[]) => accounts.reduce((sum, a) => sum + availableOf(a), 0n);

/** Deduct and Freeze: allocate over ACTIVE accounts (all or nothing), into used or frozen. */
export function planSpend(
  kind: TransactionKind,
  state: SpendState,
  command: SpendCommand,
  nowMs: number,
): Planned<SpendChanges, SpendResult> {
  const { request, envelope } = command;
  const replay = outcomeToReplay(state.stored, { customerId: request.customerId, ...envelope });
  if (replay) return { kind: "replay", stored: replay };
  if (state.customerPk === null) throw new BillingError("customer_not_found", undefined, { customer_id: request.customerId });
  if (!state.complete && totalAvailable(state.accounts) < request.amount) return { kind: "more" };
  const { accounts, before } = state;
  const lines = allocate({
    accounts,
    amount: request.amount,
    creditTypes: request.creditTypes,
    nowMs,
    availableAllTypes: before.available,
  });
  const deltas = lines.map((l) =>
    kind === "DEDUCT" ? { accountId: l.accountId, used: l.amount, frozen: 0n } : { accountId: l.accountId, used: 0n, frozen: l.amount },
  );
  const auto = request.autoSettlement;
  const autoAtMs = auto ? nowMs + Number(auto.afterSeconds) * 1000 : null;
  return {
    kind: "apply",
    changes: { kind, customerPk: state.customerPk, lines, deltas, autoAction: auto?.action ?? null, autoAtMs, envelope },
    result: {
      transactionId: request.transactionId,
      amount: request.amount,
      details: lines,
      atMs: nowMs,
      unfreezeAtMs: auto?.action === "UNFREEZE" ? autoAtMs : null,
      consumeAtMs: auto?.action === "CONSUME" ? autoAtMs : null,
      balance: balanceAfter(before, accounts, deltas, nowMs),
      isIdempotentReplay: false,
    },
  };
}
