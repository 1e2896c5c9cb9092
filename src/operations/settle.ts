import type { SQL } from "drizzle-orm";
import { balanceAfter, type AccountDelta } from "../domain/account-deltas.js";
import { allocate } from "../domain/allocation.js";
import { type Decision, decideConsume, decideUnfreeze, splitConsume, type FrozenPart } from "../domain/hold.js";
import { consumeEnvelope, type IdempotencyEnvelope, unfreezeEnvelope } from "../domain/idempotency.js";
import type { ConsumeResult, UnfreezeResult } from "../domain/results.js";
import type { AccountSnapshot, AllocationLine, Balance } from "../domain/types.js";
import { BillingError } from "../errors/billing-error.js";
import {
  accountsFromRows,
  activeBalanceSql,
  applyAccountDeltasSql,
  balanceFromRow,
  expiryRecordedIdsFromRows,
  lockSpendableAccountsSql,
} from "../store/accounts-store.js";
import { encodeJson } from "../store/json-codec.js";
import { appendLedgerSql, type NewLedgerEntry } from "../store/ledger-store.js";
import { findOutcomeSql, outcomeFromRow, recordOutcomeSql } from "../store/outcomes-store.js";
import { rowsOf, runTransaction } from "../store/run-transaction.js";
import { isRowCountGuardFailure } from "../store/sql-errors.js";
import {
  allocationFromRow,
  countAllocationAccountsSql,
  findTransactionSql,
  lockAllocationAccountsSql,
  settleTransactionSql,
  transactionCustomerPkSql,
  transactionFromRow,
  type TransactionRow,
} from "../store/transactions-store.js";
import type { BillingContext } from "./context.js";
import { replayOf } from "./idempotency.js";

export interface SettleTarget {
  readonly projectId: bigint;
  /** The caller's key, recorded on the settlement's ledger entries; null for the sweeper. */
  readonly apiKeyId: bigint | null;
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
  const needsSpendable = (hold: TransactionRow) => input.allowOverage && (input.actualAmount ?? 0n) > hold.amount;
  return settle(
    ctx,
    input,
    mode,
    "CONSUMED",
    {
      decide: (hold) => decideConsume(hold, input.actualAmount),
      envelope: (hold) => consumeEnvelope(hold.transactionId, input.actualAmount ?? hold.amount),
    },
    needsSpendable,
    (loaded, nowMs) => {
      const actual = input.actualAmount ?? loaded.hold.amount;
      const { movement: m, writes } = planMove(loaded, input, actual, input.allowOverage, mode, nowMs);
      const result: ConsumeResult = {
        transactionId: loaded.hold.transactionId,
        consumedAmount: actual,
        returnedAmount: m.returnedAmount,
        overageAmount: m.overageAmount,
        details: m.charged,
        returnedDetails: m.returned,
        atMs: nowMs,
        balance: m.balance,
        isIdempotentReplay: false,
      };
      return { applied: { result, movement: m, consumedAmount: actual }, writes };
    },
  );
}

export async function unfreeze(ctx: BillingContext, input: SettleTarget, mode = MANUAL): Promise<UnfreezeResult | null> {
  return settle(
    ctx,
    input,
    mode,
    "UNFROZEN",
    { decide: (hold) => decideUnfreeze(hold), envelope: (hold) => unfreezeEnvelope(hold.transactionId) },
    () => false,
    (loaded, nowMs) => {
      const { movement: m, writes } = planMove(loaded, input, 0n, false, mode, nowMs);
      const result: UnfreezeResult = {
        transactionId: loaded.hold.transactionId,
        unfrozenAmount: m.returnedAmount,
        details: m.returned,
        atMs: nowMs,
        balance: m.balance,
        isIdempotentReplay: false,
      };
      return { applied: { result, movement: m, consumedAmount: 0n }, writes };
    },
  );
}

/** What a repeat of the settlement may do (hold.ts), and the envelope its outcome is stored under. */
interface SettleRule {
  decide(hold: TransactionRow | null): Decision;
  envelope(hold: TransactionRow): IdempotencyEnvelope;
}

interface Applied<R> {
  readonly result: R;
  readonly movement: Movement;
  readonly consumedAmount: bigint;
}

interface Loaded {
  readonly hold: TransactionRow;
  readonly parts: FrozenPart[];
  /** The hold's own accounts, and the spendable ones when an overage needs them (by id). */
  readonly accounts: AccountSnapshot[];
  /** Spendable accounts of the hold's credit types, in spending order; empty without overage. */
  readonly spendable: AccountSnapshot[];
  /** The customer's balance before the settlement. */
  readonly before: Balance;
  /** The hold's accounts whose expiry is on the ledger: what returns to them expires at once. */
  readonly expiryRecorded: ReadonlySet<bigint>;
}

/**
 * The shared settlement envelope, in two round trips: (BEGIN, lock the hold and its customer,
 * lock the hold's accounts through its allocation, sum the balance), then (write, COMMIT);
 * an overage adds one to lock the spendable accounts it may charge.
 * Decides from the hold's state (apply or replay) under those locks. Returns null only when the
 * sweeper finds the customer or the hold busy (SKIP LOCKED).
 */
async function settle<R extends { isIdempotentReplay: boolean }>(
  ctx: BillingContext,
  target: SettleTarget,
  mode: SettleMode,
  status: "CONSUMED" | "UNFROZEN",
  rule: SettleRule,
  needsSpendable: (hold: TransactionRow) => boolean,
  apply: (loaded: Loaded, nowMs: number) => { applied: Applied<R>; writes: SQL[] },
): Promise<R | null> {
  const { projectId, transactionId } = target;
  return runTransaction(
    ctx.database,
    async (tx) => {
      const nowMs = ctx.now();
      const skipLocked = mode.automatic;
      // Locking the hold joined to its customer takes both rows, hold first: nothing else ever
      // waits on a hold while holding its customer (Deduct/Freeze only insert new holds), so
      // this order cannot deadlock, and it saves a statement.
      // The sweeper takes every lock with SKIP LOCKED and gives up on the hold when one is
      // missing: a hold, customer or account busy elsewhere is settled on a later pass.
      const [outcomeRows, holdRows, allocationRows, balanceRows, accountCountRows] = await tx.run([
        findOutcomeSql(projectId, { scope: "SETTLE", key: transactionId }),
        findTransactionSql(projectId, transactionId, { lock: true, skipLocked }),
        lockAllocationAccountsSql(projectId, transactionId, { skipLocked }),
        activeBalanceSql(projectId, transactionCustomerPkSql(projectId, transactionId), nowMs),
        ...(skipLocked ? [countAllocationAccountsSql(projectId, transactionId)] : []),
      ]);
      const hold = transactionFromRow(rowsOf(holdRows)[0]);
      if (hold && target.customerId !== null && hold.customerId !== target.customerId) {
        throw new BillingError("customer_scope_mismatch", undefined, { customer_id: target.customerId });
      }
      if (skipLocked) {
        const lockedAccounts = accountsFromRows(rowsOf(allocationRows)).length;
        if (!hold || lockedAccounts < Number(rowsOf(accountCountRows)[0]?.accounts ?? 0)) return null;
      }
      const envelope = hold === null ? null : rule.envelope(hold);
      if (envelope !== null) {
        // A stored settlement under another request is refused with the code the hold's state
        // gives (freeze_records_already_consumed, no_unfreezable_records, ...).
        const refuse = (): never => {
          rule.decide(hold);
          throw new BillingError("freeze_records_inconsistent");
        };
        const replay = replayOf<R>(outcomeFromRow(rowsOf(outcomeRows)[0]), { customerId: null, ...envelope }, refuse);
        if (replay) return replay;
      }
      // Settled, yet nothing stored to replay: the records disagree.
      if (rule.decide(hold) === "replay") throw new BillingError("freeze_records_inconsistent");
      if (!hold || !envelope) throw new Error(`hold ${transactionId} vanished under lock`);
      let spendable: AccountSnapshot[] = [];
      if (needsSpendable(hold)) {
        const [rows] = await tx.run([lockSpendableAccountsSql(projectId, hold.customerPk, nowMs, hold.creditTypes, null)]);
        spendable = accountsFromRows(rowsOf(rows));
      }
      const byId = new Map([...accountsFromRows(rowsOf(allocationRows)), ...spendable].map((a) => [a.id, a]));
      const loaded: Loaded = {
        hold,
        parts: rowsOf(allocationRows).map(allocationFromRow),
        accounts: [...byId.values()],
        spendable,
        before: balanceFromRow(rowsOf(balanceRows)[0]),
        expiryRecorded: expiryRecordedIdsFromRows(rowsOf(allocationRows)),
      };
      const { applied, writes } = apply(loaded, nowMs);
      const { result, movement, consumedAmount } = applied;
      const settlement = settleTransactionSql(hold.pk, {
        status,
        consumedAmount,
        returnedAmount: movement.returnedAmount,
        overageAmount: movement.overageAmount,
        automatic: mode.automatic,
        nowMs,
      });
      const outcome = recordOutcomeSql(projectId, { envelope, customerPk: hold.customerPk, response: encodeJson(result), nowMs });
      await tx.run([...settlement, outcome, ...writes], { commit: true }).catch((error: unknown) => {
        // A guarded update that missed: the hold or its accounts are not what was read under lock.
        throw isRowCountGuardFailure(error) ? new BillingError("freeze_records_inconsistent", undefined, {}, { cause: error }) : error;
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

/** Plans charging `actual` from the hold (and beyond it, as overage) and returning the rest. */
function planMove(
  { hold, parts, accounts, spendable, before, expiryRecorded }: Loaded,
  { projectId, apiKeyId }: SettleTarget,
  actual: bigint,
  allowOverage: boolean,
  mode: SettleMode,
  nowMs: number,
): { movement: Movement; writes: SQL[] } {
  checkHoldRecords(hold, parts, accounts);
  const split = splitConsume(parts, actual, allowOverage);
  const overage = split.overage > 0n ? allocateOverage(spendable, before, hold, split.overage, nowMs) : [];

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
  const entries: NewLedgerEntry[] = [
    ...charged.map((l) => ({ operation: "CONSUME" as const, ...l })),
    ...returned.map((l) => ({ operation: "UNFREEZE" as const, ...l })),
    ...overage.map((l) => ({ operation: "CONSUME" as const, ...l, overage: true })),
  ];
  const ledger =
    entries.length === 0
      ? []
      : appendLedgerSql(
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
            apiKeyId,
          },
          entries,
        );
  // Credits returned to an account whose leftover was already recorded as expired would be
  // available again in an expired account: they expire at once, with their own entry.
  const expiring = returned.filter((l) => expiryRecorded.has(l.accountId));
  const expiry =
    expiring.length === 0
      ? []
      : appendLedgerSql(
          {
            projectId,
            customerPk: hold.customerPk,
            // Like every EXPIRE entry, no transaction of its own; transaction_id says which
            // settlement returned the credits.
            transactionPk: null,
            transactionId: hold.transactionId,
            idempotencyKey: "",
            businessType: 0,
            description: "",
            metadata: {},
            automatic: true,
            nowMs,
          },
          expiring.map((l) => ({ operation: "EXPIRE" as const, ...l })),
        );
  return {
    movement: {
      charged: [...charged, ...overage],
      returned,
      returnedAmount: split.returns.reduce((sum, p) => sum + p.amount, 0n),
      overageAmount: split.overage,
      balance: balanceAfter(before, accounts, deltas, nowMs),
    },
    writes: [...applyAccountDeltasSql(deltas), ...ledger, ...expiry],
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
function allocateOverage(
  spendable: readonly AccountSnapshot[],
  before: Balance,
  hold: TransactionRow,
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
