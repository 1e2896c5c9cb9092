import { BillingError } from "../../errors/billing-error.js";
import {
  type EntitlementFields,
  type EntitlementView,
  planSet,
  type RemoveEntitlementResult,
  type SetEntitlementResult,
  withStatus,
} from "../entitlements.js";
import { refusable, type WriteOutcome } from "./outcome.js";

// The write plans of entitlements: Set and Remove decided from what their prefetch read under the
// customer's lock (store/entitlement-writes.ts); the rules are domain/entitlements.ts.

export interface EntitlementTarget {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly featureKey: string;
}

export interface SetEntitlementInput extends EntitlementFields {
  readonly projectId: bigint;
  readonly customerId: string;
}

/** Read under lock: the customer first, then its entitlement of the feature. */
export interface EntitlementState {
  /** null: no such customer. */
  readonly customerPk: bigint | null;
  /** The feature's entitlement; null when there is none. */
  readonly current: EntitlementView | null;
}

export interface SetChanges {
  readonly customerPk: bigint;
  /** null: the entitlement is created (its id is the database's). */
  readonly current: EntitlementView | null;
  readonly fields: EntitlementFields;
  readonly oldValue: string | null;
}

export interface RemoveChanges {
  readonly customerPk: bigint;
  readonly current: EntitlementView;
}

/** Stands for the id of the entitlement a Set creates until the apply reads it back. */
export const PENDING_ENTITLEMENT_ID = -1n;

/** Set: creates the entitlement or replaces its value and window (planSet); the customer must exist. */
export function planSetWrite(
  state: EntitlementState,
  input: SetEntitlementInput,
  nowMs: number,
): WriteOutcome<SetChanges, SetEntitlementResult> {
  return refusable(() => {
    const { customerPk, current } = state;
    if (customerPk === null) throw new BillingError("entitlement_customer_not_found", undefined, { customer_id: input.customerId });
    const plan = planSet(current, input);
    const fields = fieldsOf(plan.fields);
    return {
      kind: "apply",
      changes: { customerPk, current, fields, oldValue: plan.oldValue },
      result: {
        entitlement: withStatus({ ...fields, entitlementId: current?.entitlementId ?? PENDING_ENTITLEMENT_ID }, nowMs),
        isCreated: plan.isCreated,
        oldValue: plan.oldValue,
      },
    };
  });
}

/** Only the stored fields of a request (it carries project, customer and key too). */
const fieldsOf = (f: EntitlementFields): EntitlementFields => ({
  featureKey: f.featureKey,
  value: f.value,
  validFromMs: f.validFromMs,
  validUntilMs: f.validUntilMs,
  source: f.source,
  description: f.description,
  metadata: f.metadata,
});

/** Remove: deletes the feature's entitlement; nothing to remove (or no customer) is no error. */
export function planRemoveWrite(state: EntitlementState): WriteOutcome<RemoveChanges, RemoveEntitlementResult> {
  const { customerPk, current } = state;
  if (customerPk === null || current === null) return { kind: "answer", result: { removed: false, oldValue: null } };
  return { kind: "apply", changes: { customerPk, current }, result: { removed: true, oldValue: current.value } };
}
