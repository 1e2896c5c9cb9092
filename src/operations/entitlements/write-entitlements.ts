import type { Audit } from "../../domain/caller.js";
import type { RemoveEntitlementResult, SetEntitlementResult } from "../../domain/entitlements.js";
import { type EntitlementTarget, planRemoveWrite, planSetWrite, type SetEntitlementInput } from "../../domain/plans/entitlement-plans.js";
import { applyRemove, applySet, prefetchEntitlement } from "../../store/entitlement-writes.js";
import type { BillingContext } from "../context.js";
import { runProgram } from "../pipeline.js";

export type { EntitlementTarget, SetEntitlementInput };

/** Creates or replaces a customer's value of one feature, and appends a SET event. Two round trips. */
export const setEntitlement = (ctx: BillingContext, input: SetEntitlementInput & Audit): Promise<SetEntitlementResult> =>
  runProgram(ctx, {
    prefetch: () => prefetchEntitlement(input),
    plan: (state, nowMs) => planSetWrite(state, input, nowMs),
    apply: (changes, result, nowMs) => applySet(input, changes, result, nowMs),
    event: (result) => ({
      type: "entitlement.set",
      projectId: input.projectId,
      customerId: input.customerId,
      data: { feature_key: input.featureKey, created: String(result.isCreated) },
    }),
  });

/** Removes a customer's value of one feature and appends a REMOVE event; nothing to remove is no error. */
export const removeEntitlement = (ctx: BillingContext, input: EntitlementTarget & Audit): Promise<RemoveEntitlementResult> =>
  runProgram(ctx, {
    prefetch: () => prefetchEntitlement(input),
    plan: (state) => planRemoveWrite(state),
    apply: (changes, result, nowMs) => applyRemove(input, changes, result, nowMs),
    event: () => ({
      type: "entitlement.remove",
      projectId: input.projectId,
      customerId: input.customerId,
      data: { feature_key: input.featureKey },
    }),
  });
