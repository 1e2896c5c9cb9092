import { applyDeltas, type AccountDelta } from "../domain/account-deltas.js";
import { balanceOf } from "../domain/account-status.js";
import { allocate } from "../domain/allocation.js";
import { decideConsume, decideUnfreeze, splitConsume, type FrozenPart } from "../domain/hold.js";
import type { ConsumeResult, UnfreezeResult } from "../domain/results.js";
import type { AccountSnapshot, AllocationLine, Balance } from "../domain/types.js";
import { BillingError } from "../errors/billing-error.js";
import { applyAccountDeltas, lockAccounts } from "../store/accounts-store.js";
import { lockCustomerByPk } from "../store/customers-store.js";
import { decodeJson, encodeJson } from "../store/json-codec.js";
import { appendLedger, type NewLedgerEntry } from "../store/ledger-store.js";
import { runTransaction, type Tx } from "../store/run-transaction.js";
import {
  findTransaction,
  listAllocations,
  settleTransaction,
  type TransactionRow,
} from "../store/transactions-store.js";
import type { BillingContext } from "./context.js";

export interface SettleTarget {
  readonly projectId: bigint;
  readonly transactionId: string;
  /** Optional scope check: the hold must belong to this customer. */
  readonly customerId: string | null;
}

export interface ConsumeInput extends SettleTarget {
  /** null: the whole frozen amount. */
  readonly actualAmount: bigint | null;
  readonly allowOverage: boolean;
}

/** Set by the sweeper: entries are marked automatic, and a busy customer is skipped, not awaited. */
export interface SettleMode {
  readonly automatic: boolean;
}

const MANUAL: SettleMode = { automatic: false };

export async function consume(ctx: BillingContext, input: ConsumeInput, mode = MANUAL): Promise<ConsumeResult | null> {
  return settle(ctx, input, mode, "CONSUMED", (hold) => decideConsume(hold, input.actualAmount), async (tx, hold, nowMs) => {
    const actual = input.actualAmount ?? hold.amount;
    const m = await moveHold(tx, input.projectId, hold, actual, input.allowOverage, mode, nowMs);
    const result: ConsumeResult = {
      transactionId: hold.transactionId,
      consumedAmount: actual,
      returnedAmount: m.returnedAmount,
      overageAmount: m.overageAmount,
      details: m.charged,
      returnedDetails: m.returned,
      atMs: nowMs,
      balance: m.balance,
      isIdempotentReplay: false,
    };
    return { result, movement: m, consumedAmount: actual };
  });
}

export async function unfreeze(ctx: BillingContext, input: SettleTarget, mode = MANUAL): Promise<UnfreezeResult | null> {
  return settle(ctx, input, mode, "UNFROZEN", (hold) => decideUnfreeze(hold), async (tx, hold, nowMs) => {
    const m = await moveHold(tx, input.projectId, hold, 0n, false, mode, nowMs);
    const result: UnfreezeResult = {
      transactionId: hold.transactionId,
      unfrozenAmount: m.returnedAmount,
      details: m.returned,
      atMs: nowMs,
      balance: m.balance,
      isIdempotentReplay: false,
    };
    return { result, movement: m, consumedAmount: 0n };
  });
}

interface Applied<R> {
  readonly result: R;
  readonly movement: Movement;
  readonly consumedAmount: bigint;
}

/**
 * The shared settlement envelope: scope check, lock the customer then the hold, decide from its
 * state (apply or replay), apply, store the answer for replays. Returns null only when the
 * sweeper finds the customer busy.
 */
async function settle<R extends { isIdempotentReplay: boolean }>(
  ctx: BillingContext,
  target: SettleTarget,
  mode: SettleMode,
  status: "CONSUMED" | "UNFROZEN",
  decide: (hold: TransactionRow | null) => "apply" | "replay",
  apply: (tx: Tx, hold: TransactionRow, nowMs: number) => Promise<Applied<R>>,
): Promise<R | null> {
  return runTransaction(
    ctx.database.db,
    async (tx) => {
      const found = await findTransaction(tx, target.projectId, target.transactionId);
      if (found && target.customerId !== null && found.customerId !== target.customerId) {
        throw new BillingError("customer_scope_mismatch", undefined, { customer_id: target.customerId });
      }
      decide(found);
      if (!found) throw new Error("decide() accepted a missing transaction");
      if (!(await lockCustomerByPk(tx, found.customerPk, { skipLocked: mode.automatic }))) return null;
      const hold = await findTransaction(tx, target.projectId, target.transactionId, { lock: true });
      if (!hold) throw new Error(`transaction ${target.transactionId} vanished under lock`);
      if (decide(hold) === "replay") {
        if (hold.settleResponse === null) throw new BillingError("freeze_records_inconsistent");
        return { ...decodeJson<R>(hold.settleResponse), isIdempotentReplay: true };
      }
      const nowMs = ctx.now();
      const { result, movement, consumedAmount } = await apply(tx, hold, nowMs);
      await settleTransaction(tx, hold.pk, {
        status,
        consumedAmount,
        returnedAmount: movement.returnedAmount,
        overageAmount: movement.overageAmount,
        settleResponse: encodeJson(result),
        automatic: mode.automatic,
        nowMs,
      });
      return result;
    },
    ctx.retries,
  );
}

interface Movement {
  readonly charged: AllocationLine[];
  readonly returned: AllocationLine[];
  readonly returnedAmount: bigint;
  readonly overageAmount: bigint;
  readonly balance: Balance;
}

/** Charges `actual` from the hold (and beyond it, as overage), returns the rest; writes it all. */
async function moveHold(
  tx: Tx,
  projectId: bigint,
  hold: TransactionRow,
  actual: bigint,
  allowOverage: boolean,
  mode: SettleMode,
  nowMs: number,
): Promise<Movement> {
  const parts = await listAllocations(tx, hold.pk);
  const accounts = await lockAccounts(tx, projectId, hold.customerPk, nowMs, parts.map((p) => p.accountId));
  checkHoldRecords(hold, parts, accounts);
  const split = splitConsume(parts, actual, allowOverage);
  const overage = split.overage > 0n ? allocateOverage(accounts, hold, split.overage, nowMs) : [];

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
  await applyAccountDeltas(tx, deltas);
  const entries: NewLedgerEntry[] = [
    ...charged.map((l) => ({ operation: "CONSUME" as const, ...l })),
    ...returned.map((l) => ({ operation: "UNFREEZE" as const, ...l })),
    ...overage.map((l) => ({ operation: "CONSUME" as const, ...l, overage: true })),
  ];
  if (entries.length > 0) {
    await appendLedger(
      tx,
      {
        projectId,
        customerPk: hold.customerPk,
        transactionPk: hold.pk,
        transactionId: hold.transactionId,
        idempotencyKey: "",
        businessType: hold.businessType,
        description: hold.description,
        metadata: hold.metadata,
        automatic: mode.automatic,
        nowMs,
      },
      entries,
    );
  }
  return {
    charged: [...charged, ...overage],
    returned,
    returnedAmount: split.returns.reduce((sum, p) => sum + p.amount, 0n),
    overageAmount: split.overage,
    balance: balanceOf(applyDeltas(accounts, deltas), nowMs),
  };
}

/** The hold's allocations must sum to its amount and still be frozen in existing accounts. */
function checkHoldRecords(hold: TransactionRow, parts: readonly FrozenPart[], accounts: readonly AccountSnapshot[]): void {
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
function allocateOverage(accounts: readonly AccountSnapshot[], hold: TransactionRow, amount: bigint, nowMs: number): AllocationLine[] {
  try {
    return allocate({ accounts, amount, creditTypes: hold.creditTypes, nowMs });
  } catch (error) {
    if (error instanceof BillingError && error.code === "insufficient_balance_in_selected_credit_types") {
      throw new BillingError("insufficient_balance", undefined, error.facts);
    }
    throw error;
  }
}
