import { depositEnvelope, planDeposit, withWrittenIds } from "../domain/plans/deposit-plan.js";
import type { DepositRequest } from "../domain/requests.js";
import type { DepositResult } from "../domain/results.js";
import { loadDeposit } from "../store/operation-loads.js";
import { applyDeposit } from "../store/operation-writes.js";
import { mapBatch } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";
import { execute, operation, type WriteOperation } from "./executor.js";

export type DepositInput = DepositRequest;

/**
 * Deposit: load (the stored outcome; the customer created or locked, its totals, the account with
 * the deposit's key), plan (domain/plans/deposit-plan.ts), apply (credit, entry, outcome, COMMIT).
 */
export function depositOperation(request: DepositRequest): WriteOperation<DepositResult> {
  const envelope = depositEnvelope(request);
  return operation({
    customerKey: `${request.projectId}:${request.customerId}`,
    loadWrites: true,
    load: (nowMs) => loadDeposit(request, envelope, nowMs),
    loadMore: (state) => {
      throw new Error(`a deposit never needs more state (customer ${state.customerPk})`);
    },
    plan: (state, nowMs) => planDeposit(state, request, nowMs),
    apply: {
      statements: (changes, result, nowMs, slot) =>
        mapBatch(applyDeposit(request, changes, result, nowMs, slot), (ids) => withWrittenIds(result, ids)),
    },
  });
}

export const deposit = (ctx: BillingContext, input: DepositInput): Promise<DepositResult> => execute(ctx, depositOperation(input));
