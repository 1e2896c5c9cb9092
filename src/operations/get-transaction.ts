import type { AllocationLine, AutoAction, Metadata, TransactionKind, TransactionStatus } from "../domain/types.js";
import { BillingError } from "../errors/billing-error.js";
import { findTransaction, listAllocationLines } from "../store/transactions-store.js";
import { runQuery } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";

export interface TransactionView {
  readonly transactionId: string;
  readonly customerId: string;
  readonly kind: TransactionKind;
  readonly status: TransactionStatus;
  readonly amount: bigint;
  readonly consumedAmount: bigint;
  readonly returnedAmount: bigint;
  readonly overageAmount: bigint;
  readonly details: AllocationLine[];
  readonly creditTypes: string[];
  readonly businessType: number;
  readonly description: string;
  readonly metadata: Metadata;
  readonly createdAtMs: number;
  readonly settledAtMs: number | null;
  readonly autoAction: AutoAction | null;
  readonly autoAtMs: number | null;
  readonly settledAutomatically: boolean;
  /** Display prefix of the key that made it; null when made before keys existed. */
  readonly apiKeyPrefix: string | null;
  /** x-request-id of the call that made it; null when made before it was stored. */
  readonly requestId: string | null;
  /** What refunds gave back of the charge, in all. */
  readonly refundedAmount: bigint;
}

async function readTransaction(ctx: BillingContext, input: { projectId: bigint; transactionId: string }): Promise<TransactionView> {
  const { db } = ctx.database;
  const t = await findTransaction(db, input.projectId, input.transactionId);
  if (!t) throw new BillingError("transaction_not_found", undefined, { transaction_id: input.transactionId });
  return {
    transactionId: t.transactionId,
    customerId: t.customerId,
    kind: t.kind,
    status: t.status,
    amount: t.amount,
    consumedAmount: t.consumedAmount,
    returnedAmount: t.returnedAmount,
    overageAmount: t.overageAmount,
    details: await listAllocationLines(db, t.pk),
    creditTypes: t.creditTypes,
    businessType: t.businessType,
    description: t.description,
    metadata: t.metadata,
    createdAtMs: t.createdAtMs,
    settledAtMs: t.settledAtMs,
    autoAction: t.autoAction,
    autoAtMs: t.autoAtMs,
    settledAutomatically: t.settledAutomatically,
    apiKeyPrefix: t.apiKeyPrefix,
    requestId: t.requestId,
    refundedAmount: t.refundedAmount,
  };
}

/** getTransaction with storage failures translated (database down → service_unavailable). */
export const getTransaction: typeof readTransaction = (ctx, input) => runQuery(() => readTransaction(ctx, input));
