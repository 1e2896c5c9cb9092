import type { GroupWrite } from "../domain/plans/group-plan.js";
import type { Planned } from "../domain/plans/planned.js";
import { planConsume, planUnfreeze, type SettleChanges, type SettleState } from "../domain/plans/settle-plan.js";
import type { ConsumeRequest, SettleMode, SettleRequest } from "../domain/requests.js";
import type { ConsumeResult, UnfreezeResult } from "../domain/results.js";
import { BillingError } from "../errors/billing-error.js";
import { loadAllSpendable, loadSettle } from "../store/operation-loads.js";
import { settleParts } from "../store/operation-writes.js";
import { type Batch, mapBatch } from "../store/run-transaction.js";
import { isRowCountGuardFailure } from "../store/sql-errors.js";
import type { BillingContext } from "./context.js";
import { decider, executeOne, type OperationSpec, operation, type WriteOperation } from "./executor.js";

export type SettleTarget = SettleRequest;
export type ConsumeInput = ConsumeRequest;
export type { SettleMode };

const MANUAL: SettleMode = { automatic: false };

/**
 * Consume and Unfreeze: load (the stored outcome; the hold's customer, the hold, its allocation
 * with its accounts, all locked in that order; the balance), plan (domain/plans/settle-plan.ts),
 * apply (the guarded settlement, account deltas, entries, outcome). An overage loads the
 * spendable accounts it may charge (one more round trip).
 */
function settleOperation<R extends { isIdempotentReplay: boolean }>(
  request: SettleRequest,
  mode: SettleMode,
  plan: (state: SettleState, nowMs: number) => Planned<SettleChanges, R>,
  groupable: GroupWrite,
): WriteOperation<R> {
  const { projectId, transactionId } = request;
  const spec: OperationSpec<SettleState, SettleChanges, R> = {
    // The sweeper runs alone, never queued behind callers.
    customerKey: request.customerId === null || mode.automatic ? null : `${projectId}:${request.customerId}`,
    ...(mode.automatic ? {} : { holdKey: `${projectId}:${request.transactionId}`, groupable }),
    load: (nowMs) => loadSettle(projectId, request.transactionId, nowMs, { skipLocked: mode.automatic }),
    loadMore: (state, nowMs): Batch<SettleState> => {
      if (!state.hold) throw new Error("more state asked for a missing hold");
      const { customerPk, creditTypes } = state.hold;
      return mapBatch(loadAllSpendable(projectId, customerPk, creditTypes, nowMs), (spendable) => {
        const byId = new Map([...state.accounts, ...spendable].map((a) => [a.id, a]));
        return { ...state, spendable, accounts: [...byId.values()] };
      });
    },
    plan,
    apply: { parts: (changes, result, nowMs) => settleParts(projectId, request.apiKeyId, changes, result, nowMs) },
    // A guarded update that missed: the hold or its accounts are not what was read under lock.
    writeError: (error) =>
      isRowCountGuardFailure(error) ? new BillingError("freeze_records_inconsistent", undefined, {}, { cause: error }) : error,
  };
  if (mode.automatic) return operation(spec);
  const decide = decider(spec);
  return { ...operation(spec), together: { kind: "settle", key: { projectId, transactionId }, decide } };
}

export const consumeOperation = (request: ConsumeRequest, mode = MANUAL): WriteOperation<ConsumeResult> =>
  settleOperation(request, mode, (state, nowMs) => planConsume(state, request, mode, nowMs), { kind: "consume", request });

export const unfreezeOperation = (request: SettleRequest, mode = MANUAL): WriteOperation<UnfreezeResult> =>
  settleOperation(request, mode, (state, nowMs) => planUnfreeze(state, request, mode, nowMs), { kind: "unfreeze", request });

const AUTOMATIC: SettleMode = { automatic: true };

/** A caller's settlement waits for its locks, so it always has an answer (never null). */
function answered<R>(result: R | null): R {
  if (result === null) throw new Error("a manual settlement returned no result");
  return result;
}

export const consume = async (ctx: BillingContext, input: ConsumeInput): Promise<ConsumeResult> =>
  answered(await executeOne(ctx, consumeOperation(input, MANUAL)));

export const unfreeze = async (ctx: BillingContext, input: SettleTarget): Promise<UnfreezeResult> =>
  answered(await executeOne(ctx, unfreezeOperation(input, MANUAL)));

/** The sweeper's settlements: entries marked automatic, and null when the hold, its customer or an account is busy (SKIP LOCKED). */
export const consumeAutomatically = (ctx: BillingContext, input: ConsumeInput): Promise<ConsumeResult | null> =>
  executeOne(ctx, consumeOperation(input, AUTOMATIC));

export const unfreezeAutomatically = (ctx: BillingContext, input: SettleTarget): Promise<UnfreezeResult | null> =>
  executeOne(ctx, unfreezeOperation(input, AUTOMATIC));
