import { sql } from "./sql.js";
import type { Audit } from "../domain/caller.js";
import type { IdempotencyEnvelope } from "../domain/idempotency.js";
import type {
  CapacityChanges,
  CapacityDirection,
  CapacityInput,
  CapacityState,
  ClaimChanges,
  ClaimInput,
  HoldingState,
  ReleaseChanges,
  ReleaseInput,
} from "../domain/plans/slot-plans.js";
import type { HoldingResult, PoolResult } from "../domain/slots.js";
import { lockCustomerSql } from "./accounts-store.js";
import { customerByIdSql, customerPkSql, upsertCustomerSql } from "./customers-store.js";
import { encodeJson } from "./json-codec.js";
import { findOutcomeSql, outcomeFromRow, outcomePart } from "./outcomes-store.js";
import { bigOf } from "./row-values.js";
import { type Batch, mapBatch, namedBatch, rowsOf } from "./run-transaction.js";
import {
  ensurePoolSql,
  holdingFromRows,
  insertHoldingSql,
  insertSlotEventSql,
  liveHoldingIdSql,
  lockLatestHoldingSql,
  lockPoolsSql,
  poolsFromRows,
  releaseHoldingSql,
  updatePoolSql,
} from "./slots-store.js";
import { writeSetSql } from "./write-set.js";

// The prefetch and apply of the slot writes (plans: domain/plans/slot-plans.ts). Each prefetch is
// the transaction's first round trip and locks in the one order: the customer first, then the rows
// below it (pools by id, then a holding); a stored outcome is read last, under those locks. Each
// apply is the second round trip, with COMMIT; ids the database assigns are read back by name.

/**
 * Grant: creates the customer (without labels) and the pool unless they exist, locking both;
 * Revoke: locks them (nothing is created). Then the outcome stored under the key.
 */
export function prefetchCapacity(
  direction: CapacityDirection,
  input: CapacityInput,
  envelope: IdempotencyEnvelope | null,
  nowMs: number,
): Batch<CapacityState> {
  const { projectId, customerId, wallet, source } = input;
  const pk = customerPkSql(projectId, customerId);
  const grant = direction === "GRANT_CAPACITY";
  const batch = namedBatch({
    createCustomer: grant ? [upsertCustomerSql(projectId, { customerId, name: "", email: "", metadata: {}, nowMs })] : [],
    customer: [lockCustomerSql(customerByIdSql(projectId, customerId))],
    createPool: grant ? [ensurePoolSql(projectId, pk, wallet, source, nowMs)] : [],
    pool: [lockPoolsSql(projectId, pk, wallet, source)],
    outcome: envelope === null ? [] : [findOutcomeSql(projectId, envelope)],
  });
  return mapBatch(batch, (r) => {
    const customer = rowsOf(r.customer[0])[0];
    return {
      customerPk: customer ? bigOf(customer.c_pk) : null,
      pool: poolsFromRows(rowsOf(r.pool[0]))[0] ?? null,
      stored: envelope === null ? null : outcomeFromRow(rowsOf(r.outcome[0])[0]),
    };
  });
}

/** The pool moved (guarded), its event, the outcome under the key; answers the planned result. */
export function applyCapacity(
  input: CapacityInput & Audit,
  changes: CapacityChanges,
  result: PoolResult,
  nowMs: number,
): Batch<PoolResult> {
  const { projectId } = input;
  const { customerPk, before, after, envelope } = changes;
  const batch = namedBatch({
    pool: updatePoolSql(before, after),
    event: [
      insertSlotEventSql({
        projectId,
        customerPk,
        poolId: after.id,
        holdingId: null,
        type: changes.direction,
        wallet: after.wallet,
        source: after.source,
        amount: input.amount,
        resourceId: null,
        description: input.description,
        idempotencyKey: input.idempotencyKey,
        nowMs,
        apiKeyId: input.apiKeyId,
      }),
    ],
    outcome: envelope === null ? [] : writeSetSql([outcomePart(projectId, { envelope, customerPk, response: encodeJson(result), nowMs })]),
  });
  return mapBatch(batch, () => result);
}

/** Claim and Release: the customer, the wallet's pools (by id), the resource's latest holding. */
export function prefetchHolding(input: ReleaseInput): Batch<HoldingState> {
  const { projectId } = input;
  const pk = customerPkSql(projectId, input.customerId);
  const batch = namedBatch({
    customer: [lockCustomerSql(customerByIdSql(projectId, input.customerId))],
    pools: [lockPoolsSql(projectId, pk, input.wallet, null)],
    holding: [lockLatestHoldingSql(projectId, pk, input.wallet, input.resourceId)],
  });
  return mapBatch(batch, (r) => {
    const customer = rowsOf(r.customer[0])[0];
    return {
      customerPk: customer ? bigOf(customer.c_pk) : null,
      pools: poolsFromRows(rowsOf(r.pools[0])),
      holding: holdingFromRows(rowsOf(r.holding[0])),
    };
  });
}

/** The holding, the pool moved (guarded), the CLAIM event; answers with the new holding's id. */
export function applyClaim(input: ClaimInput & Audit, changes: ClaimChanges, result: HoldingResult, nowMs: number): Batch<HoldingResult> {
  const { projectId, wallet, resourceId } = input;
  const { customerPk, before, after } = changes;
  // The resource's live holding is unique (slot_holdings' UNIQUE on held_resource_id): its id, once inserted.
  const holdingId = liveHoldingIdSql(projectId, customerPk, wallet, resourceId);
  const batch = namedBatch({
    holding: [insertHoldingSql({ projectId, customerPk, poolId: after.id, wallet, resourceId, amount: input.amount, nowMs })],
    pool: updatePoolSql(before, after),
    event: [
      insertSlotEventSql({
        projectId,
        customerPk,
        poolId: after.id,
        holdingId,
        type: "CLAIM",
        wallet,
        source: after.source,
        amount: input.amount,
        resourceId,
        description: input.description,
        idempotencyKey: null,
        nowMs,
        apiKeyId: input.apiKeyId,
      }),
    ],
    holdingId: [sql`SELECT ${holdingId} AS holding_id`],
  });
  return mapBatch(batch, (r) => ({ ...result, holdingId: bigOf(rowsOf(r.holdingId[0])[0]?.holding_id) }));
}

/** The holding released (guarded: it must still be held), the pool moved (guarded), the RELEASE event. */
export function applyRelease(
  input: ReleaseInput & Audit,
  changes: ReleaseChanges,
  result: HoldingResult,
  nowMs: number,
): Batch<HoldingResult> {
  const { projectId } = input;
  const { customerPk, holding, before, after } = changes;
  const batch = namedBatch({
    holding: releaseHoldingSql(holding.id, nowMs),
    pool: updatePoolSql(before, after),
    event: [
      insertSlotEventSql({
        projectId,
        customerPk,
        poolId: after.id,
        holdingId: holding.id,
        type: "RELEASE",
        wallet: input.wallet,
        source: after.source,
        amount: holding.amount,
        resourceId: input.resourceId,
        description: null,
        idempotencyKey: null,
        nowMs,
        apiKeyId: input.apiKeyId,
      }),
    ],
  });
  return mapBatch(batch, () => result);
}
