import type { Timestamp } from "../../gen/google/protobuf/timestamp.js";
import {
  AccountStatus as ProtoAccountStatus,
  OperationType,
  TransactionKind as ProtoKind,
  TransactionStatus as ProtoStatus,
  type Account,
  type AllocationDetail,
  type BatchResponse,
  type OperationResult,
  type Balance as ProtoBalance,
  type ConsumeResponse,
  type DeductResponse,
  type DepositResponse,
  type FreezeResponse,
  type GetCustomerResponse,
  type GetTransactionResponse,
  type ListLedgerEntriesResponse,
  type RefundResponse,
  type UnfreezeResponse,
  type VoidDepositResponse,
} from "../../gen/velobase/billing/v1/billing.js";
import type { RefundResult, VoidResult } from "../operations/reversal.js";
import type { CustomerView } from "../operations/get-customer.js";
import type { TransactionView } from "../operations/get-transaction.js";
import type { LedgerEntryView } from "../operations/list-ledger.js";
import type { ConsumeResult, DepositResult, SpendResult, UnfreezeResult } from "../domain/results.js";
import type { BillingError } from "../errors/billing-error.js";
import { errorInfoOf } from "./status-details.js";
import type { ErrorDetail } from "../../gen/velobase/billing/v1/errors.js";
import type { BatchOutcome, BatchWriteResult } from "../operations/batch.js";
import type { AccountStatus, AccountView, AllocationLine, Balance, Metadata, Operation } from "../domain/types.js";
import { metadataValueText } from "../domain/validation.js";

/** Domain results → proto responses. Pure and deterministic, so a replay encodes byte for byte. */

export function timestamp(ms: number): Timestamp;
export function timestamp(ms: number | null): Timestamp | undefined;
export function timestamp(ms: number | null): Timestamp | undefined {
  if (ms === null) return undefined;
  const seconds = Math.floor(ms / 1000);
  return { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
}

/** map<string, string>: a value written over HTTP as another JSON type shows as its JSON text. */
export const metadataMap = (m: Metadata): Record<string, string> =>
  Object.fromEntries(Object.entries(m).map(([key, value]) => [key, metadataValueText(value)]));

const balance = (b: Balance): ProtoBalance => ({ total: b.total, used: b.used, frozen: b.frozen, available: b.available });

const detail = (l: AllocationLine): AllocationDetail => ({
  accountId: l.accountId.toString(),
  creditType: l.creditType,
  source: l.source,
  amount: l.amount,
});

const ACCOUNT_STATUS: Record<AccountStatus, ProtoAccountStatus> = {
  ACTIVE: ProtoAccountStatus.ACCOUNT_STATUS_ACTIVE,
  PENDING: ProtoAccountStatus.ACCOUNT_STATUS_PENDING,
  EXPIRED: ProtoAccountStatus.ACCOUNT_STATUS_EXPIRED,
};

const account = (a: AccountView): Account => ({
  id: a.id.toString(),
  creditType: a.creditType,
  source: a.source,
  total: a.total,
  used: a.used,
  frozen: a.frozen,
  available: a.available,
  startsAt: timestamp(a.startsAtMs),
  expiresAt: timestamp(a.expiresAtMs),
  status: ACCOUNT_STATUS[a.status],
});

export const depositResponse = (r: DepositResult): DepositResponse => ({
  customerId: r.customerId,
  account: account(r.account),
  addedAmount: r.addedAmount,
  ledgerEntryId: r.ledgerEntryId.toString(),
  balance: balance(r.balance),
  isIdempotentReplay: r.isIdempotentReplay,
});

export const deductResponse = (r: SpendResult): DeductResponse => ({
  transactionId: r.transactionId,
  deductedAmount: r.amount,
  details: r.details.map(detail),
  deductedAt: timestamp(r.atMs),
  balance: balance(r.balance),
  isIdempotentReplay: r.isIdempotentReplay,
});

export const freezeResponse = (r: SpendResult): FreezeResponse => ({
  transactionId: r.transactionId,
  frozenAmount: r.amount,
  details: r.details.map(detail),
  frozenAt: timestamp(r.atMs),
  unfreezeAt: timestamp(r.unfreezeAtMs),
  consumeAt: timestamp(r.consumeAtMs),
  balance: balance(r.balance),
  isIdempotentReplay: r.isIdempotentReplay,
});

export const consumeResponse = (r: ConsumeResult): ConsumeResponse => ({
  transactionId: r.transactionId,
  consumedAmount: r.consumedAmount,
  returnedAmount: r.returnedAmount,
  overageAmount: r.overageAmount,
  details: r.details.map(detail),
  consumedAt: timestamp(r.atMs),
  balance: balance(r.balance),
  isIdempotentReplay: r.isIdempotentReplay,
  returnedDetails: r.returnedDetails.map(detail),
});

export const unfreezeResponse = (r: UnfreezeResult): UnfreezeResponse => ({
  transactionId: r.transactionId,
  unfrozenAmount: r.unfrozenAmount,
  details: r.details.map(detail),
  unfrozenAt: timestamp(r.atMs),
  balance: balance(r.balance),
  isIdempotentReplay: r.isIdempotentReplay,
});

export const getCustomerResponse = (c: CustomerView): GetCustomerResponse => ({
  customerId: c.customerId,
  name: c.name,
  email: c.email,
  metadata: metadataMap(c.metadata),
  createdAt: timestamp(c.createdAtMs),
  balance: balance(c.balance),
  creditTypes: c.creditTypes.map((t) => ({
    creditType: t.creditType,
    balance: balance(t.balance),
    accounts: t.accounts.map(account),
  })),
});

export const getTransactionResponse = (t: TransactionView): GetTransactionResponse => ({
  transactionId: t.transactionId,
  customerId: t.customerId,
  kind: t.kind === "DEDUCT" ? ProtoKind.TRANSACTION_KIND_DEDUCT : ProtoKind.TRANSACTION_KIND_FREEZE,
  status: ProtoStatus[`TRANSACTION_STATUS_${t.status}`],
  amount: t.amount,
  consumedAmount: t.consumedAmount,
  returnedAmount: t.returnedAmount,
  overageAmount: t.overageAmount,
  details: t.details.map(detail),
  creditTypes: t.creditTypes,
  businessType: t.businessType,
  description: t.description,
  metadata: metadataMap(t.metadata),
  createdAt: timestamp(t.createdAtMs),
  settledAt: timestamp(t.settledAtMs),
  unfreezeAt: t.autoAction === "UNFREEZE" ? timestamp(t.autoAtMs) : undefined,
  consumeAt: t.autoAction === "CONSUME" ? timestamp(t.autoAtMs) : undefined,
  settledAutomatically: t.settledAutomatically,
  apiKeyPrefix: t.apiKeyPrefix ?? "",
  refundedAmount: t.refundedAmount,
});

export const refundResponse = (r: RefundResult): RefundResponse => ({
  refundId: r.refundId,
  transactionId: r.transactionId,
  refundedAmount: r.refundedAmount,
  restoredAmount: r.restoredAmount,
  expiredAmount: r.expiredAmount,
  refundDetails: r.details.map((d) => ({
    accountId: d.accountId.toString(),
    creditType: d.creditType,
    amount: d.amount,
    expired: d.expired,
  })),
  refundedAt: timestamp(r.atMs),
  balance: balance(r.balance),
  isIdempotentReplay: r.isIdempotentReplay,
});

export const voidDepositResponse = (r: VoidResult): VoidDepositResponse => ({
  voidId: r.voidId,
  recordId: r.recordId.toString(),
  voidedAmount: r.voidedAmount,
  voidedAt: timestamp(r.atMs),
  balance: balance(r.balance),
  isIdempotentReplay: r.isIdempotentReplay,
});

const OPERATION: Record<Operation, OperationType> = {
  DEPOSIT: OperationType.OPERATION_TYPE_DEPOSIT,
  DEDUCT: OperationType.OPERATION_TYPE_DEDUCT,
  FREEZE: OperationType.OPERATION_TYPE_FREEZE,
  CONSUME: OperationType.OPERATION_TYPE_CONSUME,
  UNFREEZE: OperationType.OPERATION_TYPE_UNFREEZE,
  EXPIRE: OperationType.OPERATION_TYPE_EXPIRE,
  REFUND: OperationType.OPERATION_TYPE_REFUND,
  VOID: OperationType.OPERATION_TYPE_VOID,
};

export const listLedgerEntriesResponse = (page: { entries: LedgerEntryView[]; nextPageToken: string }): ListLedgerEntriesResponse => ({
  entries: page.entries.map((e) => ({
    id: e.id.toString(),
    operation: OPERATION[e.operation],
    amount: e.amount,
    accountId: e.accountId.toString(),
    creditType: e.creditType,
    source: e.source,
    transactionId: e.transactionId,
    idempotencyKey: e.idempotencyKey,
    businessType: e.businessType,
    description: e.description,
    metadata: metadataMap(e.metadata),
    automatic: e.automatic,
    createdAt: timestamp(e.createdAtMs),
    overage: e.overage,
    apiKeyPrefix: e.apiKeyPrefix ?? "",
    sequence: e.sequence,
    balanceAfter: balance(e.balanceAfter),
    reversesTransactionId: e.reversesTransactionId ?? "",
    reversesRecordId: e.reversesRecordId?.toString() ?? "",
  })),
  nextPageToken: page.nextPageToken,
});

/** The ErrorDetail of a refused write of a Batch (the call itself succeeded). */
const errorDetail = (e: BillingError): ErrorDetail => ({ code: e.code, type: e.spec.type, message: e.message });

function operationResult(r: BatchWriteResult | BillingError): OperationResult {
  if (!("kind" in r)) return { result: { $case: "error", value: errorDetail(r) }, errorInfo: errorInfoOf(r) };
  const errorInfo = undefined;
  switch (r.kind) {
    case "deposit":
      return { result: { $case: "deposit", value: depositResponse(r.result) }, errorInfo };
    case "deduct":
      return { result: { $case: "deduct", value: deductResponse(r.result) }, errorInfo };
    case "freeze":
      return { result: { $case: "freeze", value: freezeResponse(r.result) }, errorInfo };
    case "consume":
      return { result: { $case: "consume", value: consumeResponse(r.result) }, errorInfo };
    case "unfreeze":
      return { result: { $case: "unfreeze", value: unfreezeResponse(r.result) }, errorInfo };
    case "refund":
      return { result: { $case: "refund", value: refundResponse(r.result) }, errorInfo };
    case "void":
      return { result: { $case: "voidDeposit", value: voidDepositResponse(r.result) }, errorInfo };
  }
}

export const batchResponse = (outcome: BatchOutcome): BatchResponse =>
  outcome.ok
    ? { results: outcome.results.map(operationResult), failedError: undefined, failedErrorInfo: undefined }
    : {
        results: [],
        failedIndex: outcome.failedIndex,
        failedError: errorDetail(outcome.error),
        failedErrorInfo: errorInfoOf(outcome.error),
      };
