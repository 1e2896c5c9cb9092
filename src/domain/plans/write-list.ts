import type { BillingError } from "../../errors/billing-error.js";
import { type CustomerRef, customerKey, type HoldRef, holdKey } from "../customer-ref.js";
import type { FrozenPart, Hold } from "../hold.js";
import type { AlertCrossing, AlertState, AvailableBalances, BalanceAlert } from "../balance-alerts.js";
import type { LedgerPosition } from "../ledger-position.js";
import { type OutcomeScope, type StoredOutcome, unfreezeEnvelope } from "../idempotency.js";
import type { ConsumeRequest, DepositRequest, FreezeRequest, SettleMode, SettleRequest } from "../requests.js";
import type { ConsumeResult, DepositResult, SpendResult, UnfreezeResult } from "../results.js";
import type { AccountSnapshot, Balance, TransactionKind } from "../types.js";
import { type DepositChanges, type DepositCommand, depositEnvelope } from "./deposit-plan.js";
import type { ExpiryChanges } from "./expiry-plan.js";
import { type RefundChanges, type RefundCommand, type RefundRequest, type RefundResult, refundEnvelope } from "./refund-plan.js";
import type { ReversalState } from "./reversal-state.js";
import { type VoidChanges, type VoidCommand, type VoidRequest, type VoidResult, voidEnvelope } from "./void-plan.js";
import { type ConsumeCommand, consumeEnvelopeOf, type SettleChanges, type UnfreezeCommand } from "./settle-plan.js";
import { type SpendChanges, type SpendCommand, spendEnvelope } from "./spend-plan.js";

/**
 * Every write of credits the pipeline runs, alone or in a list (a customer's group, writes side
 * by side, a Batch): a caller's five writes, and the sweeper's settlements and its records of
 * accounts that expired or started.
 * A keyed write carries its envelope (domain/command.ts): made by the constructors below, once per
 * write, however often the pipeline plans it again.
 */
export type CreditWrite =
  | DepositWrite
  | SpendWrite
  | ConsumeWrite
  | UnfreezeWrite
  | { readonly kind: "expire"; readonly account: SweptAccount }
  | { readonly kind: "start"; readonly account: SweptAccount }
  | RefundWrite
  | VoidWrite;

export type DepositWrite = { readonly kind: "deposit" } & DepositCommand;
export type SpendWrite = { readonly kind: "spend"; readonly spendKind: TransactionKind } & SpendCommand;
export type ConsumeWrite = { readonly kind: "consume"; readonly mode: SettleMode } & ConsumeCommand;
export type UnfreezeWrite = { readonly kind: "unfreeze"; readonly mode: SettleMode } & UnfreezeCommand;
export type RefundWrite = { readonly kind: "refund" } & RefundCommand;
export type VoidWrite = { readonly kind: "void" } & VoidCommand;

export const depositWrite = (request: DepositRequest): DepositWrite => ({ kind: "deposit", request, envelope: depositEnvelope(request) });

export const spendWrite = (spendKind: TransactionKind, request: FreezeRequest): SpendWrite => ({
  kind: "spend",
  spendKind,
  request,
  envelope: spendEnvelope(spendKind, request),
});

export const consumeWrite = (request: ConsumeRequest, mode: SettleMode): ConsumeWrite => ({
  kind: "consume",
  request,
  mode,
  envelope: consumeEnvelopeOf(request),
});

export const unfreezeWrite = (request: SettleRequest, mode: SettleMode): UnfreezeWrite => ({
  kind: "unfreeze",
  request,
  mode,
  envelope: unfreezeEnvelope(request.transactionId),
});

export const refundWrite = (request: RefundRequest): RefundWrite => ({ kind: "refund", request, envelope: refundEnvelope(request) });

export const voidWrite = (request: VoidRequest): VoidWrite => ({ kind: "void", request, envelope: voidEnvelope(request) });

/**
 * An account the sweeper found past its expiry with its leftover not yet on the ledger, or past
 * its start with the customer's alerts not yet decided again.
 */
export interface SweptAccount {
  readonly projectId: bigint;
  readonly customerPk: bigint;
  readonly accountId: bigint;
}

/** The customer a write names, when it names one (a settlement may name only its hold). */
export function customerRefOf(write: CreditWrite): CustomerRef | null {
  switch (write.kind) {
    case "deposit":
    case "spend":
    case "void":
      return write.request;
    case "consume":
    case "unfreeze":
    case "refund":
      return write.request.customerId === null ? null : { projectId: write.request.projectId, customerId: write.request.customerId };
    case "expire":
    case "start":
      return null;
  }
}

/** The sweeper's records of an account: they name no customer, hold or key of a caller. */
const isAccountRecord = (write: CreditWrite): write is Extract<CreditWrite, { kind: "expire" | "start" }> =>
  write.kind === "expire" || write.kind === "start";

/** The project a write is made in. */
export const projectOfWrite = (write: CreditWrite): bigint => (isAccountRecord(write) ? write.account.projectId : write.request.projectId);

/** The hold a write creates (Freeze, Deduct), settles (Consume, Unfreeze) or refunds. */
export function holdRefOf(write: CreditWrite): HoldRef | null {
  return isAccountRecord(write) || write.kind === "deposit" || write.kind === "void" ? null : write.request;
}

/** The key under which a write's outcome is stored, when it has one (a deposit without a key has none). */
export function outcomeRefOf(write: CreditWrite): { projectId: bigint; scope: OutcomeScope; key: string } | null {
  switch (write.kind) {
    case "deposit":
      return write.request.idempotencyKey === null
        ? null
        : { projectId: write.request.projectId, scope: "DEPOSIT", key: write.request.idempotencyKey };
    case "spend":
      return { projectId: write.request.projectId, scope: "SPEND", key: write.request.transactionId };
    case "consume":
    case "unfreeze":
      return { projectId: write.request.projectId, scope: "SETTLE", key: write.request.transactionId };
    case "refund":
      return { projectId: write.request.projectId, scope: "REFUND", key: write.request.refundId };
    case "void":
      return { projectId: write.request.projectId, scope: "VOID", key: write.request.voidId };
    case "expire":
    case "start":
      return null;
  }
}

export const outcomeMapKey = (ref: { projectId: bigint; scope: string; key: string }) => `${ref.scope}:${ref.projectId}:${ref.key}`;

/** A customer as the prefetch locked and read it. */
export interface CustomerState {
  readonly pk: bigint;
  readonly ref: CustomerRef;
  /** Balance over its ACTIVE accounts. */
  readonly before: Balance;
  /** Every account read: spendable ones, a hold's, a deposit's (by id). */
  readonly accounts: ReadonlyMap<bigint, AccountSnapshot>;
  /** Accounts whose expiry is on the ledger already: credits returned to them expire at once. */
  readonly expiryRecorded: ReadonlySet<bigint>;
  /** The sweeper's records of starts only: the accounts read whose start is not recorded yet. */
  readonly startsUnrecorded?: ReadonlySet<bigint>;
  /**
   * The sweeper's records of starts only: what every account of the customer that has started,
   * its start not recorded, holds available, by credit type (those of this list and of later passes).
   */
  readonly startsArriving?: ReadonlyMap<string, bigint>;
  /**
   * What the prefetch read of each credit-type selection of the list's spends (selectionKey): null,
   * every spendable account of it; an account, only its first ones, up to that account in spending
   * order. Accounts after it (read for another selection, a hold, a deposit) may follow unread ones.
   */
  readonly selectionsRead: ReadonlyMap<string, AccountSnapshot | null>;
  /** Every spendable account of every type was read. */
  readonly allSpendable: boolean;
  /** The prefetch created it (a first deposit): removed again if no write of the list lands on it. */
  readonly created: boolean;
  /** Its last ledger entry's sequence and balance_after. */
  readonly ledger: LedgerPosition;
  /** Whether it has balance alerts (read with its lock: the alert calls keep it under that lock). */
  readonly hasAlerts: boolean;
  /** Its balance alerts (locked) and the available balances they watch, once read (`alertsRead`). */
  readonly alerts: readonly BalanceAlert[];
  readonly available: AvailableBalances;
  readonly alertsRead: boolean;
}

/** Customers that have alerts the prefetch has not read yet: a list is planned only once there are none. */
export const customersMissingAlerts = (state: ListState): CustomerState[] =>
  [...state.customers.values()].filter((c) => c.hasAlerts && !c.alertsRead);

/** A hold as the prefetch locked it, with its allocation; null hold: no such transaction. */
export interface HoldState {
  readonly hold: Hold | null;
  readonly parts: readonly FrozenPart[];
}

/** What the prefetch of a list read, under the locks of every customer the list touches. */
export interface ListState {
  readonly customers: ReadonlyMap<bigint, CustomerState>;
  /** customerKey → pk, for the customers that exist. */
  readonly customerPks: ReadonlyMap<string, bigint>;
  /** holdKey → the hold. */
  readonly holds: ReadonlyMap<string, HoldState>;
  /** outcomeMapKey → the stored outcome, read after the locks. */
  readonly outcomes: ReadonlyMap<string, StoredOutcome>;
  /** Sweeper lists only: customers or rows found locked elsewhere (SKIP LOCKED), by customer pk. */
  readonly busy: ReadonlySet<bigint>;
  /** The charges and deposits the list's refunds and voids name (absent: the list has none). */
  readonly reversals?: ReversalState;
}

/** A crossing with the alert it is of. */
export interface AlertCrossingOf {
  readonly alert: BalanceAlert;
  readonly crossing: AlertCrossing;
}

export const NO_AVAILABLE: AvailableBalances = { all: 0n, byCreditType: new Map() };

export const selectionKey = (creditTypes: readonly string[]) => [...creditTypes].sort().join(",");

export const customerPkOf = (state: ListState, ref: CustomerRef): bigint | undefined => state.customerPks.get(customerKey(ref));

export const holdOf = (state: ListState, ref: HoldRef): HoldState | undefined => state.holds.get(holdKey(ref));

/** One write's plan: what it changes and answers, a replay, its refusal, or (sweeper) left for later. */
export type WritePlan =
  | { readonly kind: "deposit"; readonly changes: DepositChanges; readonly result: DepositResult }
  | { readonly kind: "spend"; readonly changes: SpendChanges; readonly result: SpendResult }
  | { readonly kind: "settle"; readonly changes: SettleChanges; readonly result: ConsumeResult | UnfreezeResult }
  | { readonly kind: "expire"; readonly changes: ExpiryChanges }
  | { readonly kind: "start"; readonly changes: SweptAccount }
  | { readonly kind: "refund"; readonly changes: RefundChanges; readonly result: RefundResult }
  | { readonly kind: "void"; readonly changes: VoidChanges; readonly result: VoidResult }
  | { readonly kind: "replay"; readonly stored: StoredOutcome }
  | { readonly kind: "refused"; readonly error: BillingError }
  | { readonly kind: "skipped" };

/**
 * What the planner decided for a list:
 * - `planned`: plans for the first `plans.length` writes. Fewer than the list means the next
 *   write depends on what these write (a key used twice, a hold created in the list, a new
 *   account): they are applied, the rest is prefetched again in the same transaction and planned.
 * - `more`: the prefetch did not read enough of these customers (only their first spendable
 *   accounts, or an overage): read all their spendable accounts and plan again.
 */
export type ListPlan =
  | {
      readonly kind: "planned";
      readonly plans: readonly WritePlan[];
      /** Each plan's entries' positions, in the order its entries are written (none for a write that changes nothing). */
      readonly positions: readonly (readonly LedgerPosition[])[];
      /** Each customer whose ledger moved: its last sequence before the list, and its position after. */
      readonly ledgers: ReadonlyMap<bigint, { readonly from: bigint; readonly to: LedgerPosition }>;
      /** Each plan's balance-alert crossings (domain/balance-alerts.ts), decided under the customer's lock. */
      readonly crossings: readonly (readonly AlertCrossingOf[])[];
      /** The state each crossed alert is left in. */
      readonly alertStates: ReadonlyMap<bigint, AlertState>;
    }
  | { readonly kind: "more"; readonly customerPks: readonly bigint[] };

/** A list planned whole: what apply writes. */
export type PlannedList = Extract<ListPlan, { kind: "planned" }>;
