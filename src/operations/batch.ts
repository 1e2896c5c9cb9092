import { BATCH_OPERATIONS_MAX } from "../domain/limits.js";
import type { ConsumeRequest, DepositRequest, FreezeRequest, SettleRequest, SpendRequest } from "../domain/requests.js";
import type { ConsumeResult, DepositResult, SpendResult, UnfreezeResult } from "../domain/results.js";
import { BillingError, toBillingError } from "../errors/billing-error.js";
import type { RefundRequest, RefundResult } from "../domain/plans/refund-plan.js";
import type { VoidRequest, VoidResult } from "../domain/plans/void-plan.js";
import {
  type CreditWrite,
  consumeWrite,
  depositWrite,
  refundWrite,
  spendWrite,
  unfreezeWrite,
  voidWrite,
} from "../domain/plans/write-list.js";
import { isLostConnection } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";
import { AtomicFailure, runEachAlone, runList, type Settled } from "./pipeline.js";
import { MANUAL } from "./settle.js";

/** One write of a Batch call, as parsed; a write that did not parse is its error. */
export type BatchWrite =
  | { readonly kind: "deposit"; readonly request: DepositRequest }
  | { readonly kind: "deduct"; readonly request: SpendRequest }
  | { readonly kind: "freeze"; readonly request: FreezeRequest }
  | { readonly kind: "consume"; readonly request: ConsumeRequest }
  | { readonly kind: "unfreeze"; readonly request: SettleRequest }
  | { readonly kind: "refund"; readonly request: RefundRequest }
  | { readonly kind: "void"; readonly request: VoidRequest };

export type BatchWriteResult =
  | { readonly kind: "deposit"; readonly result: DepositResult }
  | { readonly kind: "deduct" | "freeze"; readonly result: SpendResult }
  | { readonly kind: "consume"; readonly result: ConsumeResult }
  | { readonly kind: "unfreeze"; readonly result: UnfreezeResult }
  | { readonly kind: "refund"; readonly result: RefundResult }
  | { readonly kind: "void"; readonly result: VoidResult };

export type BatchOutcome =
  /** In request order: each write's response or its error (atomic: every one succeeded). */
  | { readonly ok: true; readonly results: ReadonlyArray<BatchWriteResult | BillingError> }
  /** Atomic and refused: nothing was written. */
  | { readonly ok: false; readonly failedIndex: number; readonly error: BillingError };

function creditWriteOf(write: BatchWrite): CreditWrite {
  switch (write.kind) {
    case "deposit":
      return depositWrite(write.request);
    case "deduct":
      return spendWrite("DEDUCT", { ...write.request, autoSettlement: null });
    case "freeze":
      return spendWrite("FREEZE", write.request);
    case "consume":
      return consumeWrite(write.request, MANUAL);
    case "unfreeze":
      return unfreezeWrite(write.request, MANUAL);
    case "refund":
      return refundWrite(write.request);
    case "void":
      return voidWrite(write.request);
  }
}

/** A batch of more than BATCH_OPERATIONS_MAX writes is refused whole (a transport may ask before parsing them). */
export function checkBatchSize(operations: number): void {
  if (operations > BATCH_OPERATIONS_MAX) {
    throw new BillingError("invalid_argument", `A batch holds at most ${BATCH_OPERATIONS_MAX} operations.`, {
      field: "operations",
      requested: operations,
      limit: BATCH_OPERATIONS_MAX,
    });
  }
}

/**
 * Batch: up to BATCH_OPERATIONS_MAX writes over any customers of one project, as one list of the
 * pipeline (operations/pipeline.ts), in one transaction. Their customers are locked first, in
 * ascending primary-key order, so two batches never wait on each other in a cycle. Each write keeps its own key and replays on its own. Atomic:
 * all or none, and the first refusal is named by its index. Not atomic: each write gets what it
 * would have got alone; if the shared transaction fails, each is run alone.
 */
export async function batch(ctx: BillingContext, parsed: ReadonlyArray<BatchWrite | BillingError>, atomic: boolean): Promise<BatchOutcome> {
  checkBatchSize(parsed.length);
  const firstInvalid = parsed.findIndex((p) => p instanceof BillingError);
  if (atomic && firstInvalid >= 0) return { ok: false, failedIndex: firstInvalid, error: parsed[firstInvalid] as BillingError };
  const writes = parsed.filter((p): p is BatchWrite => !(p instanceof BillingError));
  const list = writes.map(creditWriteOf);
  let settled: Settled[];
  try {
    settled = await runList(ctx, list, { atomic });
  } catch (error) {
    if (error instanceof AtomicFailure) return { ok: false, failedIndex: originalIndex(parsed, error.index), error: error.error };
    // As in group commit: after a lost connection the COMMIT may have happened, so nothing is re-run.
    if (atomic || isLostConnection(error)) throw error;
    settled = await runEachAlone(ctx, list);
  }
  let next = 0;
  const results = parsed.map((p): BatchWriteResult | BillingError => {
    if (p instanceof BillingError) return p;
    const s = settled[next++];
    if (!s) throw new Error("a write of the batch has no result");
    if (!s.ok) return writeError(s.error, atomic);
    return { kind: p.kind, result: s.result } as BatchWriteResult;
  });
  return { ok: true, results };
}

/**
 * A write's failure as its answer. A refusal is one; anything else (a bug, a lost database) fails
 * the call when it is atomic, since then nothing was written. Not atomic, the writes ran alone
 * (runEachAlone) and the others may have committed: the call answers, and this write's answer is
 * server_error (the transport logs it with its cause), so a client neither retries the others nor
 * loses their answers.
 */
function writeError(error: unknown, atomic: boolean): BillingError {
  if (error instanceof BillingError) return error;
  if (atomic) throw error;
  return toBillingError(error);
}

/** The position in the request of the n-th write that parsed. */
function originalIndex(parsed: ReadonlyArray<BatchWrite | BillingError>, n: number): number {
  let seen = -1;
  for (const [index, p] of parsed.entries()) {
    if (!(p instanceof BillingError)) seen++;
    if (seen === n) return index;
  }
  return n;
}
