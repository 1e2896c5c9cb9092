import { BillingError } from "../../errors/billing-error.js";
import { type AccountDelta, balanceAfter } from "../account-deltas.js";
import { allocate } from "../allocation.js";
import { type Decision, decideConsume, decideUnfreeze, type FrozenPart, type Hold, splitConsume } from "../hold.js";
import type { Command } from "../command.js";
import { consumeEnvelope, type IdempotencyEnvelope, outcomeToReplay, type StoredOutcome } from "../idempotency.js";
import type { ConsumeRequest, SettleMode, SettleRequest } from "../requests.js";
import type { ConsumeResult, UnfreezeResult } from "../results.js";
import type { AccountSnapshot, AllocationLine, Balance } from "../types.js";
import type { LedgerLine, Planned } from "./planned.js";

/** What Consume and Unfreeze read under the locks of the hold's customer, the hold and its accounts. */
export interface SettleState {
  readonly stored: StoredOutcome | null;
  /** null: no such transaction (or, for the sweeper, one locked elsewhere). */
  readonly hold: Hold | null;
  /** The hold's allocation, in order. */
  readonly parts: readonly FrozenPart[];
  /** The hold's own accounts, and the spendable ones once loaded (by id). */
  readonly accounts: readonly AccountSnapshot[];
  /** Spendable accounts of the hold's credit types, in spending order; null until an overage needs them. */
  readonly spendable: readonly AccountSnapshot[] | null;
  readonly before: Balance;
  /** The hold's accounts whose expiry is on the ledger: what returns to them expires at once. */
  readonly expiryRecorded: ReadonlySet<bigint>;
  /** The sweeper skipped a locked row (customer or account): leave the hold for a later pass. */
  readonly busy: boolean;
}

export interface SettleChanges {
  readonly hold: Hold;
  readonly status: "CONSUMED" | "UNFROZEN";
  readonly consumedAmount: bigint;
  readonly returnedAmount: bigint;
  readonly overageAmount: bigint;
  readonly deltas: readonly AccountDelta[];
  /** CONSUME, UNFREEZE and overage CONSUME entries, on the hold's transaction. */
  readonly entries: readonly LedgerLine[];
  /** Credits returned to accounts whose leftover already expired: they expire at once. */
  readonly expiring: readonly LedgerLine[];
  readonly automatic: boolean;
  readonly envelope: IdempotencyEnvelope;
}

/**
 * A Consume's envelope by the amount it charges: the request's actual amount or, for a Consume of
 * the whole hold, the hold's amount, known once the hold is read.
 */
export type ConsumeEnvelope = (holdAmount: bigint) => IdempotencyEnvelope;

export type ConsumeCommand = Command<ConsumeRequest, ConsumeEnvelope>;
export type UnfreezeCommand = Command<SettleRequest, IdempotencyEnvelope>;

/**
 * A Consume's envelope, fingerprinted once: from the request's actual amount, or from the hold's
 * amount the first time it is asked for (every plan of the write reads the same hold).
 */
export function consumeEnvelopeOf(request: ConsumeRequest): ConsumeEnvelope {
  const { transactionId, actualAmount } = request;
  if (actualAmount !== null) {
    const envelope = consumeEnvelope(transactionId, actualAmount);
    return () => envelope;
  }
  let wholeHold: IdempotencyEnvelope | null = null;
  return (holdAmount) => {
    if (wholeHold?.canonicalRequest.actualAmount !== holdAmount) wholeHold = consumeEnvelope(transactionId, holdAmount);
    return wholeHold;
  };
}

interface Movement {
  readonly charged: AllocationLine[];
  readonly returned: AllocationLine[];
  readonly changes: Omit<SettleChanges, "hold" | "status" | "consumedAmount" | "automatic" | "envelope">;
  readonly balance: Balance;
}

export function planConsume(
  state: SettleState,
  command: ConsumeCommand,
  mode: SettleMode,
  nowMs: number,
): Planned<SettleChanges, ConsumeResult> {
  const { request } = command;
  const rule = {
    decide: (hold: Hold | null) => decideConsume(hold, request.actualAmount),
    envelope: (hold: Hold) => command.envelope(hold.amount),
  };
  const checked = checkSettlement(state, request, mode, rule);
  if (checked.kind !== "apply") return checked;
  const { hold, envelope } = checked;
  const actual = request.actualAmount ?? hold.amount;
  if (request.allowOverage && actual > hold.amount && state.spendable === null) return { kind: "more" };
  const m = planMovement(state, hold, actual, request.allowOverage, nowMs);
  return {
    kind: "apply",
    changes: { ...m.changes, hold, status: "CONSUMED", consumedAmount: actual, automatic: mode.automatic, envelope },
    result: {
      transactionId: hold.transactionId,
      consumedAmount: actual,
      returnedAmount: m.changes.returnedAmount,
      overageAmount: m.changes.overageAmount,
      details: m.charged,
      returnedDetails: m.returned,
      atMs: nowMs,
      balance: m.balance,
      isIdempotentReplay: false,
    },
  };
}

export function planUnfreeze(
  state: SettleState,
  command: UnfreezeCommand,
  mode: SettleMode,
  nowMs: number,
): Planned<SettleChanges, UnfreezeResult> {
  const rule = { decide: decideUnfreeze, envelope: () => command.envelope };
  const checked = checkSettlement(state, command.request, mode, rule);
  if (checked.kind !== "apply") return checked;
  const { hold, envelope } = checked;
  const m = planMovement(state, hold, 0n, false, nowMs);
  return {
    kind: "apply",
    changes: { ...m.changes, hold, status: "UNFROZEN", consumedAmount: 0n, automatic: mode.automatic, envelope },
    result: {
      transactionId: hold.transactionId,
      unfrozenAmount: m.changes.returnedAmount,
      details: m.returned,
      atMs: nowMs,
      balance: m.balance,
      isIdempotentReplay: false,
    },
  };
}

/** What a repeat of the settlement may do (hold.ts), and the envelope its outcome is stored under. */
interface SettleRule {
  decide(hold: Hold | null): Decision;
  envelope(hold: Hold): IdempotencyEnvelope;
}

/** The checks every settlement makes before planning its movement, in order. */
function checkSettlement(
  state: SettleState,
  request: SettleRequest,
  mode: SettleMode,
  rule: SettleRule,
): { kind: "apply"; hold: Hold; envelope: IdempotencyEnvelope } | { kind: "replay"; stored: StoredOutcome } | { kind: "skip" } {
  const { hold } = state;
  if (hold && request.customerId !== null && hold.customerId !== request.customerId) {
    throw new BillingError("customer_scope_mismatch", undefined, { customer_id: request.customerId });
  }
  if (mode.automatic && (hold === null || state.busy)) return { kind: "skip" };
  if (hold !== null) {
    const envelope = rule.envelope(hold);
    // A stored settlement of another request is refused with the code the hold's state gives
    // (freeze_records_already_consumed, no_unfreezable_records, ...).
    const refuse = (): never => {
      rule.decide(hold);
      throw new BillingError("freeze_records_inconsistent");
    };
    const replay = outcomeToReplay(state.stored, { customerId: null, ...envelope }, refuse);
    if (replay) return { kind: "replay", stored: replay };
    // Settled, yet nothing stored to replay: the records disagree.
    if (rule.decide(hold) === "replay") throw new BillingError("freeze_records_inconsistent");
    return { kind: "apply", hold, envelope };
  }
  rule.decide(null);
  throw new BillingError("freeze_records_inconsistent");
}

/** Charging `actual` from the hold (and beyond it, as overage) and returning the rest. */
function planMovement(state: SettleState, hold: Hold, actual: bigint, allowOverage: boolean, nowMs: number): Movement {
  const { parts, accounts, before, expiryRecorded } = state;
  checkHoldRecords(hold, parts, accounts);
  const split = splitConsume(parts, actual, allowOverage);
  const overage = split.overage > 0n ? allocateOverage(state.spendable ?? [], before, hold, split.overage, nowMs) : [];
  const byId = new Map(accounts.map((a) => [a.id, a]));
  const line = (p: FrozenPart): AllocationLine => {
    const a = byId.get(p.accountId);
    if (!a) throw new Error(`account ${p.accountId} not loaded`);
    return { accountId: a.id, creditType: a.creditType, source: a.source, amount: p.amount };
  };
  const charged = split.charges.map(line);
  const returned = split.returns.map(line);
  const deltas: AccountDelta[] = [
    ...charged.map((l) => ({ accountId: l.accountId, used: l.amount, frozen: -l.amount })),
    ...returned.map((l) => ({ accountId: l.accountId, used: 0n, frozen: -l.amount })),
    ...overage.map((l) => ({ accountId: l.accountId, used: l.amount, frozen: 0n })),
  ];
  const entries: LedgerLine[] = [
    ...charged.map((l) => ({ operation: "CONSUME" as const, ...l })),
    ...returned.map((l) => ({ operation: "UNFREEZE" as const, ...l })),
    ...overage.map((l) => ({ operation: "CONSUME" as const, ...l, overage: true })),
  ];
  // Credits returned to an account whose leftover was already recorded as expired would be
  // available again in an expired account: they expire at once, with their own entry.
  const expiring = returned.filter((l) => expiryRecorded.has(l.accountId)).map((l) => ({ operation: "EXPIRE" as const, ...l }));
  return {
    charged: [...charged, ...overage],
    returned,
    changes: {
      returnedAmount: split.returns.reduce((sum, p) => sum + p.amount, 0n),
      overageAmount: split.overage,
      deltas,
      entries,
      expiring,
    },
    balance: balanceAfter(before, accounts, deltas, nowMs),
  };
}

/** The hold's allocations must sum to its amount and still be frozen in existing accounts. */
function checkHoldRecords(hold: Hold, parts: readonly FrozenPart[], accounts: readonly AccountSnapshot[]): void {
  const total = parts.reduce((sum, p) => sum + p.amount, 0n);
  if (total !== hold.amount) {
    throw new BillingError("freeze_records_inconsistent", undefined, { frozen: hold.amount, allocated: total });
  }
  const byId = new Map(accounts.map((a) => [a.id, a]));
  for (const part of parts) {
    const account = byId.get(part.accountId);
    if (!account) throw new BillingError("billing_account_not_found", undefined, { account_id: part.accountId });
    if (account.frozen < part.amount) {
      throw new BillingError("freeze_records_inconsistent", undefined, { account_id: part.accountId });
    }
  }
}

/** Overage is charged like a deduct over the hold's credit types; short → insufficient_balance. */
function allocateOverage(
  spendable: readonly AccountSnapshot[],
  before: Balance,
  hold: Hold,
  amount: bigint,
  nowMs: number,
): AllocationLine[] {
  try {
    return allocate({ accounts: spendable, amount, creditTypes: hold.creditTypes, nowMs, availableAllTypes: before.available });
  } catch (error) {
    if (error instanceof BillingError && error.code === "insufficient_balance_in_selected_credit_types") {
      throw new BillingError("insufficient_balance", undefined, error.facts);
    }
    throw error;
  }
}
