import { sql } from "drizzle-orm";
import type { Audit } from "../../domain/caller.js";
import { planGrant, planRevoke, poolView, type PoolResult, type PoolSnapshot, type SlotEventType } from "../../domain/slots.js";
import { BillingError } from "../../errors/billing-error.js";
import { lockCustomerSql } from "../../store/accounts-store.js";
import { customerByIdSql, customerPkSql, upsertCustomerSql } from "../../store/customers-store.js";
import { encodeJson } from "../../store/json-codec.js";
import { bigOf } from "../../store/row-values.js";
import { rethrowGuardFailure } from "../../store/row-count-guard.js";
import { compact, rowsOf, runTransaction, type Tx } from "../../store/run-transaction.js";
import {
  ensurePoolSql,
  findSlotKeySql,
  insertSlotEventSql,
  insertSlotKeySql,
  lockPoolsSql,
  poolByIdSql,
  poolsFromRows,
  slotKeyFromRow,
  updatePoolSql,
} from "../../store/slots-store.js";
import type { BillingContext } from "../context.js";
import { requestFingerprints } from "../../domain/idempotency.js";
import { replayStored, type StoredOutcome } from "../idempotency.js";

/** Grant and Revoke: the same request shape, opposite directions. */
export interface CapacityInput {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly wallet: string;
  /** Already defaulted to "default". */
  readonly source: string;
  readonly amount: bigint;
  readonly idempotencyKey: string | null;
  readonly description: string | null;
}

type Loaded = { stored: StoredOutcome } | { customerPk: bigint; pool: PoolSnapshot | null };

/** Grant: BEGIN, key lookup, create-or-lock the customer, create-or-lock the pool. */
async function loadGrant(tx: Tx, input: CapacityInput, nowMs: number): Promise<Loaded> {
  const { projectId, idempotencyKey } = input;
  const results = await tx.run([
    ...(idempotencyKey === null ? [] : [findSlotKeySql(projectId, idempotencyKey)]),
    upsertCustomerSql(projectId, { customerId: input.customerId, name: "", email: "", metadata: {}, nowMs }),
    sql`SET @customer = LAST_INSERT_ID()`,
    ensurePoolSql(projectId, sql`@customer`, input.wallet, input.source, nowMs),
    poolByIdSql(sql`LAST_INSERT_ID()`),
    sql`SELECT @customer AS customer_pk`,
  ]);
  const stored = idempotencyKey === null ? null : slotKeyFromRow(rowsOf(results[0])[0]);
  if (stored) return { stored };
  const pool = poolsFromRows(rowsOf(results.at(-2)))[0];
  if (!pool) throw new Error("the pool was not locked after its upsert");
  return { customerPk: bigOf(rowsOf(results.at(-1))[0]?.customer_pk), pool };
}

/** Revoke: BEGIN, key lookup, lock the customer and the pool (neither is created). */
async function loadRevoke(tx: Tx, input: CapacityInput): Promise<Loaded> {
  const { projectId, idempotencyKey } = input;
  const results = await tx.run([
    ...(idempotencyKey === null ? [] : [findSlotKeySql(projectId, idempotencyKey)]),
    lockCustomerSql(customerByIdSql(projectId, input.customerId)),
    lockPoolsSql(projectId, customerPkSql(projectId, input.customerId), input.wallet, input.source),
  ]);
  const stored = idempotencyKey === null ? null : slotKeyFromRow(rowsOf(results[0])[0]);
  if (stored) return { stored };
  const customer = rowsOf(results.at(-2))[0];
  if (!customer) throw new BillingError("slot_pool_not_found", undefined, { wallet: input.wallet });
  return { customerPk: bigOf(customer.c_pk), pool: poolsFromRows(rowsOf(results.at(-1)))[0] ?? null };
}

function locked(pool: PoolSnapshot | null): PoolSnapshot {
  if (pool === null) throw new Error("no pool was locked");
  return pool;
}

/** One envelope for both directions: load, replay or plan, then (pool, event, key, COMMIT). */
function changeCapacity(ctx: BillingContext, type: SlotEventType, input: CapacityInput & Audit): Promise<PoolResult> {
  const { projectId, idempotencyKey } = input;
  const fingerprints = requestFingerprints({ op: type, ...input, projectId: undefined, apiKeyId: undefined, idempotencyKey: undefined });
  return runTransaction(
    ctx.database,
    async (tx) => {
      const nowMs = ctx.now();
      const loaded = type === "GRANT_CAPACITY" ? await loadGrant(tx, input, nowMs) : await loadRevoke(tx, input);
      // A replay rolls back what the load wrote (a fresh customer or pool): nothing is committed.
      if ("stored" in loaded) return replayStored<PoolResult>(loaded.stored, input.customerId, fingerprints);
      const { customerPk, pool } = loaded;
      const after = type === "REVOKE_CAPACITY" ? planRevoke(pool, input.amount, input.wallet) : planGrant(locked(pool), input.amount);
      const before = locked(pool);
      const result: PoolResult = { pool: poolView(after), isIdempotentReplay: false };
      await tx
        .run(
          compact([
            ...updatePoolSql(before, after),
            insertSlotEventSql({
              projectId,
              customerPk,
              poolId: after.id,
              holdingId: null,
              type,
              wallet: after.wallet,
              source: after.source,
              amount: input.amount,
              resourceId: null,
              description: input.description,
              idempotencyKey,
              nowMs,
              apiKeyId: input.apiKeyId,
            }),
            idempotencyKey === null
              ? null
              : insertSlotKeySql(projectId, {
                  key: idempotencyKey,
                  customerPk,
                  requestFingerprint: fingerprints.requestFingerprint,
                  response: encodeJson(result),
                  nowMs,
                }),
          ]),
          { commit: true },
        )
        .catch(rethrowGuardFailure);
      return result;
    },
    ctx.retries,
  );
}

/** Adds capacity to the (customer, wallet, source) pool, creating customer and pool on first use. */
export const grantCapacity = (ctx: BillingContext, input: CapacityInput & Audit): Promise<PoolResult> =>
  changeCapacity(ctx, "GRANT_CAPACITY", input);

/** Removes capacity from a pool; never below what is in use. */
export const revokeCapacity = (ctx: BillingContext, input: CapacityInput & Audit): Promise<PoolResult> =>
  changeCapacity(ctx, "REVOKE_CAPACITY", input);
