import { type SQL, sql } from "./sql.js";
import type { LedgerPosition } from "../domain/ledger-position.js";
import type { LedgerLine } from "../domain/plans/planned.js";
import type { RefundChanges, RefundRequest, RefundResult } from "../domain/plans/refund-plan.js";
import type { VoidChanges, VoidRequest, VoidResult } from "../domain/plans/void-plan.js";
import type { CreditWrite, WritePlan } from "../domain/plans/write-list.js";
import { encodeJson } from "./json-codec.js";
import { expiryParts, ledgerPart, type NewLedgerEntry } from "./ledger-store.js";
import { outcomePart } from "./outcomes-store.js";
import { guardedUpdateSql } from "./row-count-guard.js";
import { accounts, transactions } from "./schema.js";
import type { WritePart } from "./write-set.js";

// The apply of refunds and voids (a part of list-apply.ts): their rows join the list's write set
// (account deltas, entries, outcomes); what the write set has no part for (a charge's refunded
// amount, a deposit account's total) are guarded UPDATEs of their own, run after the write set.

export interface ReversalApply {
  readonly parts: readonly WritePart[];
  /** Run after the write set: a void's total may only shrink once the list's deltas freed the credits. */
  readonly statements: readonly SQL[];
}

/** A refund or void plan's parts and statements (its entries at `positions`, in the order they are written); none for any other write. */
export function reversalApply(write: CreditWrite, plan: WritePlan, positions: readonly LedgerPosition[], nowMs: number): ReversalApply {
  if (plan.kind === "refund" && write.kind === "refund") return refundApply(write.request, plan.changes, plan.result, positions, nowMs);
  if (plan.kind === "void" && write.kind === "void") return voidApply(write.request, plan.changes, plan.result, positions, nowMs);
  return { parts: [], statements: [] };
}

/** Each entry with its position in the customer's ledger. */
function positioned(entries: readonly LedgerLine[], positions: readonly LedgerPosition[]): NewLedgerEntry[] {
  if (positions.length !== entries.length) throw new Error("a reversal's entries and their ledger positions differ in number");
  return entries.map((e, i) => ({ ...e, position: positions[i] as LedgerPosition }));
}

/**
 * Gives the credits back (used shrinks), appends the REFUND entries on the charge (they name it,
 * and carry the refund's reason and metadata) and the EXPIRE entries of what went back to
 * accounts already recorded as expired, records the outcome, and adds to the charge's refunded
 * amount (guarded: it must still be what was read under lock).
 */
function refundApply(
  request: RefundRequest,
  changes: RefundChanges,
  result: RefundResult,
  positions: readonly LedgerPosition[],
  nowMs: number,
): ReversalApply {
  const onCharge = positions.slice(0, changes.entries.length);
  const expiring = positions.slice(changes.entries.length);
  const { projectId } = request;
  const { charge } = changes;
  const parts: WritePart[] = [
    { kind: "deltas", deltas: changes.deltas },
    outcomePart(projectId, { envelope: changes.envelope, customerPk: charge.customerPk, response: encodeJson(result), nowMs }),
    ledgerPart(
      {
        projectId,
        customerPk: charge.customerPk,
        transactionPk: charge.pk,
        transactionId: charge.transactionId,
        idempotencyKey: request.refundId,
        businessType: charge.businessType,
        description: request.reason,
        metadata: request.metadata,
        automatic: false,
        nowMs,
        apiKeyId: request.apiKeyId,
        reversesTransactionId: charge.transactionId,
      },
      positioned(changes.entries, onCharge),
    ),
    ...expiryParts(
      { projectId, customerPk: charge.customerPk, transactionId: charge.transactionId, nowMs },
      positioned(changes.expiring, expiring),
    ),
  ];
  const refunded = sql`UPDATE ${transactions} SET refunded_amount = refunded_amount + ${changes.amount}
    WHERE id = ${charge.pk} AND refunded_amount = ${charge.refundedAmount}`;
  return { parts, statements: guardedUpdateSql(refunded, 1) };
}

/** Appends the VOID entry naming the deposit, records the outcome, and takes the credits off the account's total (guarded: still available). */
function voidApply(
  request: VoidRequest,
  changes: VoidChanges,
  result: VoidResult,
  positions: readonly LedgerPosition[],
  nowMs: number,
): ReversalApply {
  const { projectId } = request;
  const parts: WritePart[] = [
    outcomePart(projectId, { envelope: changes.envelope, customerPk: changes.customerPk, response: encodeJson(result), nowMs }),
    ledgerPart(
      {
        projectId,
        customerPk: changes.customerPk,
        transactionPk: null,
        transactionId: "",
        idempotencyKey: request.voidId,
        businessType: 0,
        description: "",
        metadata: {},
        automatic: false,
        nowMs,
        apiKeyId: request.apiKeyId,
        reversesRecordId: changes.record.id,
      },
      positioned([changes.entry], positions),
    ),
  ];
  const voided = sql`UPDATE ${accounts} SET total = total - ${changes.amount}
    WHERE id = ${changes.record.accountId} AND total - used - frozen >= ${changes.amount}`;
  return { parts, statements: guardedUpdateSql(voided, 1) };
}
