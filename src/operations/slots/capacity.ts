import type { Audit } from "../../domain/caller.js";
import { type CapacityDirection, type CapacityInput, capacityEnvelope, planCapacity } from "../../domain/plans/slot-plans.js";
import { type PoolResult, poolFacts } from "../../domain/slots.js";
import { applyCapacity, prefetchCapacity } from "../../store/slot-writes.js";
import type { BillingContext } from "../context.js";
import { runProgram } from "../pipeline.js";

export type { CapacityInput };

/** Grant or Revoke on the pipeline: prefetch (customer, pool, stored outcome) → planCapacity → the pool, its event, the outcome. */
function changeCapacity(ctx: BillingContext, direction: CapacityDirection, input: CapacityInput & Audit): Promise<PoolResult> {
  const envelope = capacityEnvelope(direction, input);
  return runProgram(ctx, {
    prefetch: (nowMs) => prefetchCapacity(direction, input, envelope, nowMs),
    plan: (state) => planCapacity(direction, state, input, envelope),
    apply: (changes, result, nowMs) => applyCapacity(input, changes, result, nowMs),
    event: (result) => ({
      type: direction === "GRANT_CAPACITY" ? "slot.grant" : "slot.revoke",
      projectId: input.projectId,
      customerId: input.customerId,
      data: { ...poolFacts(result.pool), amount: input.amount.toString() },
    }),
  });
}

/** Adds capacity to the (customer, wallet, source) pool, creating customer and pool on first use. */
export const grantCapacity = (ctx: BillingContext, input: CapacityInput & Audit): Promise<PoolResult> =>
  changeCapacity(ctx, "GRANT_CAPACITY", input);

/** Removes capacity from a pool; never below what is in use. */
export const revokeCapacity = (ctx: BillingContext, input: CapacityInput & Audit): Promise<PoolResult> =>
  changeCapacity(ctx, "REVOKE_CAPACITY", input);
