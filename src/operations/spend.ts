import { planSpend, type SpendChanges, type SpendState, spendStateFromActive } from "../domain/plans/spend-plan.js";
import type { FreezeRequest, SpendRequest } from "../domain/requests.js";
import type { SpendResult } from "../domain/results.js";
import type { TransactionKind } from "../domain/types.js";
import type { AutoSettlement } from "../domain/validation.js";
import { spendEnvelope } from "../domain/plans/spend-plan.js";
import { loadAllSpendable, loadSpend } from "../store/operation-loads.js";
import { storedOutcomeKey } from "../store/outcomes-store.js";
import { spendParts } from "../store/operation-writes.js";
import { mapBatch } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";
import { decider, execute, type OperationSpec, operation, type WriteOperation } from "./executor.js";

export type SpendInput = SpendRequest;
export type FreezeInput = FreezeRequest;
export type { AutoSettlement };

/**
 * Deduct and Freeze: load (the stored outcome, the customer's lock, its first spendable accounts,
 * its balance; all its spendable accounts when those fall short), plan (allocation,
 * domain/plans/spend-plan.ts), apply (account deltas, transaction, allocation, entries, outcome).
 */
export function spendOperation(kind: TransactionKind, request: FreezeRequest): WriteOperation<SpendResult> {
  const envelope = spendEnvelope(kind, request);
  const { projectId, customerId, transactionId, creditTypes } = request;
  const spec: OperationSpec<SpendState, SpendChanges, SpendResult> = {
    customerKey: `${projectId}:${customerId}`,
    holdKey: `${projectId}:${transactionId}`,
    groupable: { kind: "spend", spendKind: kind, request },
    load: (nowMs) => loadSpend(request, envelope, nowMs),
    loadMore: (state, nowMs) =>
      mapBatch(loadAllSpendable(projectId, state.customerPk ?? 0n, creditTypes, nowMs), (accounts) => ({
        ...state,
        accounts,
        complete: true,
      })),
    plan: (state, nowMs) => planSpend(kind, state, request, nowMs),
    apply: { parts: (changes, result, nowMs) => spendParts(request, changes, result, nowMs) },
  };
  const decide = decider(spec);
  return {
    ...operation(spec),
    together: {
      kind: "spend",
      key: { projectId, customerId, transactionId },
      decide: (loaded, nowMs) => {
        const stored = loaded.outcomes.get(storedOutcomeKey("SPEND", projectId, transactionId)) ?? null;
        const customer = loaded.customers.get(`${projectId}:${customerId}`) ?? null;
        return decide(spendStateFromActive(stored, customer, creditTypes, nowMs), nowMs);
      },
    },
  };
}

export const deductOperation = (request: SpendRequest) => spendOperation("DEDUCT", { ...request, autoSettlement: null });

export const deduct = (ctx: BillingContext, input: SpendInput): Promise<SpendResult> => execute(ctx, deductOperation(input));

export const freeze = (ctx: BillingContext, input: FreezeInput): Promise<SpendResult> => execute(ctx, spendOperation("FREEZE", input));
