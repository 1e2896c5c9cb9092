import { sql } from "drizzle-orm";
import type { Audit } from "../../domain/caller.js";
import {
  planSet,
  withStatus,
  type EntitlementFields,
  type RemoveEntitlementResult,
  type SetEntitlementResult,
} from "../../domain/entitlements.js";
import { BillingError } from "../../errors/billing-error.js";
import { lockCustomerSql } from "../../store/accounts-store.js";
import { customerByIdSql, customerPkSql } from "../../store/customers-store.js";
import {
  deleteEntitlementSql,
  entitlementFromRow,
  insertEntitlementEventSql,
  insertEntitlementSql,
  lockEntitlementSql,
  updateEntitlementSql,
} from "../../store/entitlements-store.js";
import { rethrowGuardFailure } from "../../store/row-count-guard.js";
import { bigOf } from "../../store/row-values.js";
import { rowsOf, runTransaction, type Tx } from "../../store/run-transaction.js";
import type { BillingContext } from "../context.js";

export interface EntitlementTarget {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly featureKey: string;
}

export interface SetEntitlementInput extends EntitlementFields {
  readonly projectId: bigint;
  readonly customerId: string;
}

/** One round trip: BEGIN, lock the customer, lock its entitlement. null: no such customer. */
async function loadEntitlement(tx: Tx, target: EntitlementTarget) {
  const { projectId } = target;
  const [customer, current] = await tx.run([
    lockCustomerSql(customerByIdSql(projectId, target.customerId)),
    lockEntitlementSql(projectId, customerPkSql(projectId, target.customerId), target.featureKey),
  ]);
  const row = rowsOf(customer)[0];
  if (!row) return null;
  return { customerPk: bigOf(row.c_pk), current: entitlementFromRow(rowsOf(current)[0]) };
}

/** Creates or replaces a customer's value of one feature, and appends a SET event. Two round trips. */
export function setEntitlement(ctx: BillingContext, input: SetEntitlementInput & Audit): Promise<SetEntitlementResult> {
  const { projectId } = input;
  return runTransaction(
    ctx.database,
    async (tx) => {
      const nowMs = ctx.now();
      const loaded = await loadEntitlement(tx, input);
      if (loaded === null) throw new BillingError("entitlement_customer_not_found", undefined, { customer_id: input.customerId });
      const { customerPk, current } = loaded;
      const plan = planSet(current, input);
      const { fields } = plan;
      const results = await tx
        .run(
          [
            ...(current === null
              ? [insertEntitlementSql(projectId, customerPk, fields, nowMs), sql`SET @entitlement = LAST_INSERT_ID()`]
              : [...updateEntitlementSql(current.entitlementId, fields, nowMs), sql`SET @entitlement = ${current.entitlementId}`]),
            insertEntitlementEventSql({
              projectId,
              customerPk,
              entitlementId: sql`@entitlement`,
              featureKey: fields.featureKey,
              type: "SET",
              oldValue: plan.oldValue,
              newValue: fields.value,
              source: fields.source,
              description: fields.description,
              nowMs,
              apiKeyId: input.apiKeyId,
            }),
            sql`SELECT @entitlement AS entitlement_id`,
          ],
          { commit: true },
        )
        .catch(rethrowGuardFailure);
      const entitlementId = bigOf(rowsOf(results.at(-1))[0]?.entitlement_id);
      return {
        entitlement: withStatus(
          {
            entitlementId,
            featureKey: fields.featureKey,
            value: fields.value,
            validFromMs: fields.validFromMs,
            validUntilMs: fields.validUntilMs,
            source: fields.source,
            description: fields.description,
            metadata: fields.metadata,
          },
          nowMs,
        ),
        isCreated: plan.isCreated,
        oldValue: plan.oldValue,
      };
    },
    ctx.retries,
  );
}

/** Removes a customer's value of one feature and appends a REMOVE event; nothing to remove is no error. */
export function removeEntitlement(ctx: BillingContext, input: EntitlementTarget & Audit): Promise<RemoveEntitlementResult> {
  const { projectId } = input;
  return runTransaction(
    ctx.database,
    async (tx) => {
      const nowMs = ctx.now();
      const loaded = await loadEntitlement(tx, input);
      const current = loaded?.current ?? null;
      if (loaded === null || current === null) return { removed: false, oldValue: null };
      await tx
        .run(
          [
            ...deleteEntitlementSql(current.entitlementId),
            insertEntitlementEventSql({
              projectId,
              customerPk: loaded.customerPk,
              entitlementId: current.entitlementId,
              featureKey: current.featureKey,
              type: "REMOVE",
              oldValue: current.value,
              newValue: null,
              source: current.source,
              description: null,
              nowMs,
              apiKeyId: input.apiKeyId,
            }),
          ],
          { commit: true },
        )
        .catch(rethrowGuardFailure);
      return { removed: true, oldValue: current.value };
    },
    ctx.retries,
  );
}
