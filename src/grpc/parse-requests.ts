import type {
  BatchRequest,
  ConsumeRequest,
  DeductRequest,
  DepositRequest,
  FreezeRequest,
  GetCustomerRequest,
  GetTransactionRequest,
  ListLedgerEntriesRequest,
  RefundRequest,
  UnfreezeRequest,
  VoidDepositRequest,
} from "../../gen/velobase/billing/v1/billing.js";
import { BusinessType, OperationType } from "../../gen/velobase/billing/v1/billing.js";
import { type BatchWrite, checkBatchSize } from "../operations/batch.js";
import type { DepositInput } from "../operations/deposit.js";
import type { LedgerQuery } from "../operations/list-ledger.js";
import type { RefundRequest as RefundInput, VoidRequest as VoidInput } from "../operations/reversal.js";
import type { ConsumeInput, SettleTarget } from "../operations/settle.js";
import type { FreezeInput, SpendInput } from "../operations/spend.js";
import {
  DEFAULT_CREDIT_TYPE,
  DEFAULT_SOURCE,
  DESCRIPTION_LENGTH_MAX,
  EMAIL_LENGTH_MAX,
  NAME_LENGTH_MAX,
  PAGE_SIZE_DEFAULT,
  PAGE_SIZE_MAX,
} from "../domain/limits.js";
import { auditOf, requestIdOf, type Caller } from "../domain/caller.js";
import type { Operation } from "../domain/types.js";
import {
  parseActualAmount,
  parseAmount,
  parseAutoSettlement,
  parseCreditType,
  parseCreditTypes,
  parseId,
  parseMetadata,
  parseOptionalAmount,
  parseOptionalId,
  parseRecordId,
  parseSource,
  parseText,
  parseTimestamp,
} from "../domain/validation.js";
import { BillingError } from "../errors/billing-error.js";

/** Proto requests → validated domain inputs: the one place where wire input is checked. */

/** Every write runs in the caller's project and records its key. */
const customerIdOf = (raw: string) => parseId(raw, "customer_id", "customer_id_required");
const transactionIdOf = (raw: string) => parseId(raw, "transaction_id", "transaction_id_required");

const KNOWN_BUSINESS_TYPES: ReadonlySet<unknown> = new Set(Object.values(BusinessType).filter((v) => v !== BusinessType.UNRECOGNIZED));

function businessTypeOf(raw: BusinessType): number {
  if (!KNOWN_BUSINESS_TYPES.has(raw)) {
    throw new BillingError("invalid_argument", "business_type is not a known value.", { field: "business_type" });
  }
  return raw;
}

export function parseDeposit(r: DepositRequest, caller: Caller): DepositInput {
  return {
    ...auditOf(caller),
    customerId: customerIdOf(r.customerId),
    amount: parseAmount(r.amount),
    idempotencyKey: parseOptionalId(r.idempotencyKey, "idempotency_key"),
    creditType: parseCreditType(r.creditType, DEFAULT_CREDIT_TYPE),
    source: parseSource(r.source, DEFAULT_SOURCE),
    startsAtMs: parseTimestamp(r.startsAt, "starts_at", "invalid_starts_at"),
    expiresAtMs: parseTimestamp(r.expiresAt, "expires_at", "invalid_expires_at"),
    name: parseText(r.name, "name", NAME_LENGTH_MAX),
    email: parseText(r.email, "email", EMAIL_LENGTH_MAX),
    description: parseText(r.description, "description", DESCRIPTION_LENGTH_MAX),
    metadata: parseMetadata(r.metadata),
  };
}

export function parseDeduct(r: DeductRequest, caller: Caller): SpendInput {
  return {
    ...auditOf(caller),
    ...requestIdOf(caller),
    customerId: customerIdOf(r.customerId),
    transactionId: transactionIdOf(r.transactionId),
    amount: parseAmount(r.amount),
    creditTypes: parseCreditTypes(r.creditTypes),
    businessType: businessTypeOf(r.businessType),
    description: parseText(r.description, "description", DESCRIPTION_LENGTH_MAX),
    metadata: parseMetadata(r.metadata),
  };
}

export function parseFreeze(r: FreezeRequest, caller: Caller): FreezeInput {
  return { ...parseDeduct(r, caller), autoSettlement: parseAutoSettlement(r.unfreezeAfterSeconds, r.consumeAfterSeconds) };
}

function settleTargetOf(r: { transactionId: string; customerId: string }, caller: Caller): SettleTarget {
  return {
    ...auditOf(caller),
    transactionId: transactionIdOf(r.transactionId),
    customerId: parseOptionalId(r.customerId, "customer_id"),
  };
}

export function parseConsume(r: ConsumeRequest, caller: Caller): ConsumeInput {
  return {
    ...settleTargetOf(r, caller),
    actualAmount: parseActualAmount(r.actualAmount),
    allowOverage: r.allowOverage,
  };
}

export const parseUnfreeze = (r: UnfreezeRequest, caller: Caller): SettleTarget => settleTargetOf(r, caller);

export function parseRefund(r: RefundRequest, caller: Caller): RefundInput {
  return {
    ...settleTargetOf(r, caller),
    refundId: parseId(r.refundId, "refund_id"),
    amount: parseOptionalAmount(r.amount),
    reason: parseText(r.reason, "reason", DESCRIPTION_LENGTH_MAX),
    metadata: parseMetadata(r.metadata),
  };
}

export function parseVoidDeposit(r: VoidDepositRequest, caller: Caller): VoidInput {
  return {
    ...auditOf(caller),
    customerId: customerIdOf(r.customerId),
    recordId: parseRecordId(r.recordId),
    voidId: parseId(r.voidId, "void_id"),
    amount: parseOptionalAmount(r.amount),
  };
}

export function parseGetCustomer(r: GetCustomerRequest, caller: Caller) {
  return {
    projectId: caller.projectId,
    customerId: customerIdOf(r.customerId),
    includeInactive: r.includeInactive,
    asOfMs: parseTimestamp(r.asOf, "as_of", "invalid_argument"),
  };
}

export function parseGetTransaction(r: GetTransactionRequest, caller: Caller) {
  return { projectId: caller.projectId, transactionId: transactionIdOf(r.transactionId) };
}

const OPERATIONS: Partial<Record<OperationType, Operation>> = {
  [OperationType.OPERATION_TYPE_DEPOSIT]: "DEPOSIT",
  [OperationType.OPERATION_TYPE_DEDUCT]: "DEDUCT",
  [OperationType.OPERATION_TYPE_FREEZE]: "FREEZE",
  [OperationType.OPERATION_TYPE_CONSUME]: "CONSUME",
  [OperationType.OPERATION_TYPE_UNFREEZE]: "UNFREEZE",
  [OperationType.OPERATION_TYPE_EXPIRE]: "EXPIRE",
  [OperationType.OPERATION_TYPE_REFUND]: "REFUND",
  [OperationType.OPERATION_TYPE_VOID]: "VOID",
};

/** A page_size: 1-100, `fallback` when 0 (unset); else invalid_page_size. */
export function parsePageSize(raw: number, fallback: number): number {
  if (!Number.isInteger(raw) || raw < 0 || raw > PAGE_SIZE_MAX) {
    throw new BillingError("invalid_page_size", undefined, { field: "page_size", value: raw });
  }
  return raw === 0 ? fallback : raw;
}

export function parseListLedgerEntries(r: ListLedgerEntriesRequest, caller: Caller): LedgerQuery {
  const operations = r.operationTypes.map((t) => {
    const op = OPERATIONS[t];
    if (!op) throw new BillingError("invalid_operation_type", undefined, { field: "operation_types", value: t });
    return op;
  });
  const pageSize = parsePageSize(r.pageSize, PAGE_SIZE_DEFAULT);
  return {
    projectId: caller.projectId,
    customerId: customerIdOf(r.customerId),
    operations: [...new Set(operations)].sort(),
    transactionId: parseOptionalId(r.transactionId, "transaction_id"),
    reversesTransactionId: parseOptionalId(r.reversesTransactionId, "reverses_transaction_id"),
    reversesRecordId: r.reversesRecordId === "" ? null : parseRecordId(r.reversesRecordId, "reverses_record_id"),
    creditType: r.creditType === "" ? null : parseCreditType(r.creditType, null),
    createdAfterMs: parseTimestamp(r.createdAfter, "created_after", "invalid_argument", "up"),
    createdBeforeMs: parseTimestamp(r.createdBefore, "created_before", "invalid_argument", "up"),
    pageSize,
    pageToken: r.pageToken === "" ? null : r.pageToken,
  };
}

/**
 * A Batch's writes, each parsed as its own RPC would parse it; one that does not parse is its
 * error (the others still run unless the batch is atomic). More than BATCH_OPERATIONS_MAX is
 * refused whole.
 */
export function parseBatch(r: BatchRequest, caller: Caller): Array<BatchWrite | BillingError> {
  checkBatchSize(r.operations.length);
  return r.operations.map((o): BatchWrite | BillingError => {
    try {
      const op = o.operation;
      switch (op?.$case) {
        case "deposit":
          return { kind: "deposit", request: parseDeposit(op.value, caller) };
        case "deduct":
          return { kind: "deduct", request: parseDeduct(op.value, caller) };
        case "freeze":
          return { kind: "freeze", request: parseFreeze(op.value, caller) };
        case "consume":
          return { kind: "consume", request: parseConsume(op.value, caller) };
        case "unfreeze":
          return { kind: "unfreeze", request: parseUnfreeze(op.value, caller) };
        case "refund":
          return { kind: "refund", request: parseRefund(op.value, caller) };
        case "voidDeposit":
          return { kind: "void", request: parseVoidDeposit(op.value, caller) };
        default:
          return new BillingError(
            "invalid_argument",
            "Each operation must be one of deposit, deduct, freeze, consume, unfreeze, refund or void_deposit.",
            {
              field: "operations",
            },
          );
      }
    } catch (error) {
      if (error instanceof BillingError) return error;
      throw error;
    }
  });
}
