import { sql } from "./sql.js";
import type { Audit } from "../domain/caller.js";
import type { RemoveEntitlementResult, SetEntitlementResult } from "../domain/entitlements.js";
import type { EntitlementState, EntitlementTarget, RemoveChanges, SetChanges } from "../domain/plans/entitlement-plans.js";
import { lockCustomerSql } from "./accounts-store.js";
import { customerByIdSql, customerPkSql } from "./customers-store.js";
import {
  deleteEntitlementSql,
  entitlementFromRow,
  entitlementIdSql,
  insertEntitlementEventSql,
  insertEntitlementSql,
  lockEntitlementSql,
  updateEntitlementSql,
} from "./entitlements-store.js";
import { bigOf } from "./row-values.js";
import { type Batch, mapBatch, namedBatch, rowsOf } from "./run-transaction.js";

// The prefetch and apply of Set and Remove (plans: domain/plans/entitlement-plans.ts): the
// prefetch locks the customer, then its entitlement of the feature; the apply writes the row and
// its event and COMMITs, reading a new entitlement's id back by name.

export function prefetchEntitlement(target: EntitlementTarget): Batch<EntitlementState> {
  const { projectId } = target;
  const batch = namedBatch({
    customer: [lockCustomerSql(customerByIdSql(projectId, target.customerId))],
    entitlement: [lockEntitlementSql(projectId, customerPkSql(projectId, target.customerId), target.featureKey)],
  });
  return mapBatch(batch, (r) => {
    const customer = rowsOf(r.customer[0])[0];
    return { customerPk: customer ? bigOf(customer.c_pk) : null, current: entitlementFromRow(rowsOf(r.entitlement[0])[0]) };
  });
}

/** Creates or updates (guarded) the entitlement and appends SET; answers with the entitlement's id. */
export function applySet(audit: Audit, changes: SetChanges, result: SetEntitlementResult, nowMs: number): Batch<SetEntitlementResult> {
  const { projectId } = audit;
  const { customerPk, current, fields } = changes;
  // A new entitlement is the customer's only one of its feature (UNIQUE): its id, once inserted.
  const createdId = entitlementIdSql(projectId, customerPk, fields.featureKey);
  const batch = namedBatch({
    entitlement:
      current === null
        ? [insertEntitlementSql(projectId, customerPk, fields, nowMs)]
        : updateEntitlementSql(current.entitlementId, fields, nowMs),
    event: [
      insertEntitlementEventSql({
        projectId,
        customerPk,
        entitlementId: current === null ? createdId : current.entitlementId,
        featureKey: fields.featureKey,
        type: "SET",
        oldValue: changes.oldValue,
        newValue: fields.value,
        source: fields.source,
        description: fields.description,
        nowMs,
        apiKeyId: audit.apiKeyId,
      }),
    ],
    createdId: current === null ? [sql`SELECT ${createdId} AS entitlement_id`] : [],
  });
  return mapBatch(batch, (r) => {
    if (current !== null) return result;
    const entitlementId = bigOf(rowsOf(r.createdId[0])[0]?.entitlement_id);
    return { ...result, entitlement: { ...result.entitlement, entitlementId } };
  });
}

/** Deletes the entitlement (guarded) and appends REMOVE. */
export function applyRemove(
  audit: Audit,
  changes: RemoveChanges,
  result: RemoveEntitlementResult,
  nowMs: number,
): Batch<RemoveEntitlementResult> {
  const { projectId } = audit;
  const { customerPk, current } = changes;
  const batch = namedBatch({
    entitlement: deleteEntitlementSql(current.entitlementId),
    event: [
      insertEntitlementEventSql({
        projectId,
        customerPk,
        entitlementId: current.entitlementId,
        featureKey: current.featureKey,
        type: "REMOVE",
        oldValue: current.value,
        newValue: null,
        source: current.source,
        description: null,
        nowMs,
        apiKeyId: audit.apiKeyId,
      }),
    ],
  });
  return mapBatch(batch, () => result);
}
