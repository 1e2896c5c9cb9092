import { sql } from "drizzle-orm";
import type { Audit } from "../../domain/caller.js";
import { planClaim, planRelease, poolView, type HoldingResult, type HoldingSnapshot, type PoolSnapshot } from "../../domain/slots.js";
import { BillingError } from "../../errors/billing-error.js";
import { lockCustomerSql } from "../../store/accounts-store.js";
import { customerByIdSql, customerPkSql } from "../../store/customers-store.js";
import { bigOf } from "../../store/row-values.js";
import { rethrowGuardFailure } from "../../store/row-count-guard.js";
import { rowsOf, runTransaction, type Tx } from "../../store/run-transaction.js";
import {
  holdingFromRows,
  insertHoldingSql,
  insertSlotEventSql,
  lockLatestHoldingSql,
  lockPoolsSql,
  poolsFromRows,
  releaseHoldingSql,
  updatePoolSql,
} from "../../store/slots-store.js";
import type { BillingContext } from "../context.js";

export interface ReleaseInput {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly wallet: string;
  readonly resourceId: string;
}

export interface ClaimInput extends ReleaseInput {
  /** null: the wallet's pools in claim order. */
  readonly source: string | null;
  readonly amount: bigint;
  readonly description: string | null;
}

interface HoldingState {
  readonly customerPk: bigint;
  /** All the wallet's pools, locked. */
  readonly pools: PoolSnapshot[];
  /** The resource's latest holding in the wallet, locked; null when it never held one. */
  readonly holding: HoldingSnapshot | null;
}

/** One round trip: BEGIN, lock the customer, the wallet's pools and the resource's latest holding. */
async function loadHolding(tx: Tx, input: ReleaseInput): Promise<HoldingState | null> {
  const { projectId } = input;
  const customerPk = customerPkSql(projectId, input.customerId);
  const [customer, pools, holding] = await tx.run([
    lockCustomerSql(customerByIdSql(projectId, input.customerId)),
    lockPoolsSql(projectId, customerPk, input.wallet, null),
    lockLatestHoldingSql(projectId, customerPk, input.wallet, input.resourceId),
  ]);
  const row = rowsOf(customer)[0];
  if (!row) return null;
  return { customerPk: bigOf(row.c_pk), pools: poolsFromRows(rowsOf(pools)), holding: holdingFromRows(rowsOf(holding)) };
}

function poolOf(state: HoldingState, holding: HoldingSnapshot): PoolSnapshot {
  const pool = state.pools.find((p) => p.id === holding.poolId);
  if (!pool) throw new Error(`holding ${holding.id} points to pool ${holding.poolId}, not in its wallet`);
  return pool;
}

/**
 * Takes `amount` from one pool for a resource. A resource already holding a slot in the wallet
 * gets its holding back as a replay. Two round trips: loadHolding, then (holding, pool, event,
 * COMMIT).
 */
export function claimSlot(ctx: BillingContext, input: ClaimInput & Audit): Promise<HoldingResult> {
  const { projectId } = input;
  return runTransaction(
    ctx.database,
    async (tx) => {
      const nowMs = ctx.now();
      const state = await loadHolding(tx, input);
      if (state === null) throw new BillingError("slot_pool_not_found", undefined, { wallet: input.wallet });
      const { holding } = state;
      if (holding !== null && !holding.released) {
        return { pool: poolView(poolOf(state, holding)), holdingId: holding.id, isIdempotentReplay: true };
      }
      const candidates = input.source === null ? state.pools : state.pools.filter((p) => p.source === input.source);
      const after = planClaim(candidates, input.amount, input.wallet);
      const before = state.pools.find((p) => p.id === after.id);
      if (!before) throw new Error(`planClaim chose pool ${after.id}, which is not locked`);
      const [, , ids] = await tx
        .run(
          [
            insertHoldingSql({ ...input, customerPk: state.customerPk, poolId: after.id, nowMs }),
            sql`SET @holding = LAST_INSERT_ID()`,
            sql`SELECT @holding AS holding_id`,
            ...updatePoolSql(before, after),
            insertSlotEventSql({
              projectId,
              customerPk: state.customerPk,
              poolId: after.id,
              holdingId: sql`@holding`,
              type: "CLAIM",
              wallet: input.wallet,
              source: after.source,
              amount: input.amount,
              resourceId: input.resourceId,
              description: input.description,
              idempotencyKey: null,
              nowMs,
              apiKeyId: input.apiKeyId,
            }),
          ],
          { commit: true },
        )
        .catch(rethrowGuardFailure);
      return { pool: poolView(after), holdingId: bigOf(rowsOf(ids)[0]?.holding_id), isIdempotentReplay: false };
    },
    ctx.retries,
  );
}

/**
 * Gives a resource's holding back to its pool. Its last holding already released → a replay
 * answering that holding; never held → slot_holding_not_found.
 */
export function releaseSlot(ctx: BillingContext, input: ReleaseInput & Audit): Promise<HoldingResult> {
  const { projectId } = input;
  return runTransaction(
    ctx.database,
    async (tx) => {
      const nowMs = ctx.now();
      const state = await loadHolding(tx, input);
      const holding = state?.holding ?? null;
      if (state === null || holding === null) {
        throw new BillingError("slot_holding_not_found", undefined, { wallet: input.wallet, resource_id: input.resourceId });
      }
      const before = poolOf(state, holding);
      if (holding.released) return { pool: poolView(before), holdingId: holding.id, isIdempotentReplay: true };
      const after = planRelease(before, holding);
      await tx
        .run(
          [
            ...releaseHoldingSql(holding.id, nowMs),
            ...updatePoolSql(before, after),
            insertSlotEventSql({
              projectId,
              customerPk: state.customerPk,
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
          { commit: true },
        )
        .catch(rethrowGuardFailure);
      return { pool: poolView(after), holdingId: holding.id, isIdempotentReplay: false };
    },
    ctx.retries,
  );
}
