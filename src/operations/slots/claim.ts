import type { Audit } from "../../domain/caller.js";
import { type ClaimInput, planClaimWrite, planReleaseWrite, type ReleaseInput } from "../../domain/plans/slot-plans.js";
import { type HoldingResult, poolFacts } from "../../domain/slots.js";
import { applyClaim, applyRelease, prefetchHolding } from "../../store/slot-writes.js";
import { liveHoldingIdSql } from "../../store/slots-store.js";
import type { BillingContext } from "../context.js";
import { runProgram } from "../pipeline.js";

export type { ClaimInput, ReleaseInput };

/**
 * Takes `amount` from one pool for a resource. A resource already holding a slot in the wallet
 * gets its holding back as a replay. Two round trips: prefetchHolding, then (holding, pool,
 * event, COMMIT).
 */
export const claimSlot = (ctx: BillingContext, input: ClaimInput & Audit): Promise<HoldingResult> =>
  runProgram(ctx, {
    prefetch: () => prefetchHolding(input),
    plan: (state) => planClaimWrite(state, input),
    apply: (changes, result, nowMs) => applyClaim(input, changes, result, nowMs),
    // The holding is new: its id is the database's, read in the claim's own transaction.
    event: (result, changes) => ({
      ...holdingEvent("slot.claim", input, result),
      dataFromDatabase: { holding_id: liveHoldingIdSql(input.projectId, changes.customerPk, input.wallet, input.resourceId) },
    }),
  });

/**
 * Gives a resource's holding back to its pool. Its last holding already released → a replay
 * answering that holding; never held → slot_holding_not_found.
 */
export const releaseSlot = (ctx: BillingContext, input: ReleaseInput & Audit): Promise<HoldingResult> =>
  runProgram(ctx, {
    prefetch: () => prefetchHolding(input),
    plan: (state) => planReleaseWrite(state, input),
    apply: (changes, result, nowMs) => applyRelease(input, changes, result, nowMs),
    event: (result) => holdingEvent("slot.release", input, result),
  });

/** A claim's or release's event: the pool after it, the holding and its resource. */
const holdingEvent = (type: "slot.claim" | "slot.release", input: ReleaseInput, result: HoldingResult) => ({
  type,
  projectId: input.projectId,
  customerId: input.customerId,
  data: { ...poolFacts(result.pool), holding_id: result.holdingId.toString(), resource_id: input.resourceId },
});
