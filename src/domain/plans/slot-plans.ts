import { BillingError } from "../../errors/billing-error.js";
import { envelopeOf, type IdempotencyEnvelope, outcomeToReplay, type StoredOutcome } from "../idempotency.js";
import {
  type HoldingResult,
  type HoldingSnapshot,
  planClaim,
  planGrant,
  planRelease,
  planRevoke,
  type PoolResult,
  type PoolSnapshot,
  poolView,
} from "../slots.js";
import { refusable, type WriteOutcome } from "./outcome.js";

// The write plans of slots: each decides one Grant, Revoke, Claim or Release from what its
// prefetch read under the customer's lock (store/slot-writes.ts), and returns its outcome or its
// refusal; the rules themselves are domain/slots.ts.

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

export type CapacityDirection = "GRANT_CAPACITY" | "REVOKE_CAPACITY";

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

/**
 * The envelope of a keyed Grant or Revoke: the request but who sent it and the key. Grant and
 * Revoke share one key space (the op tells them apart). These are the fingerprints slot_keys
 * stored, moved as they are by migration 0011: the canonical form never changes.
 */
export function capacityEnvelope(direction: CapacityDirection, input: CapacityInput): IdempotencyEnvelope | null {
  if (input.idempotencyKey === null) return null;
  const { customerId, wallet, source, amount, description } = input;
  return envelopeOf("SLOT", input.idempotencyKey, { op: direction, customerId, wallet, source, amount, description });
}

/** What a Grant or Revoke decides from: read after the customer is locked (created, for a Grant). */
export interface CapacityState {
  /** null: no such customer (a Revoke; a Grant creates it). */
  readonly customerPk: bigint | null;
  /** The (wallet, source) pool, locked; a Grant creates it, a Revoke does not. */
  readonly pool: PoolSnapshot | null;
  /** The outcome stored under the request's key, read under the customer's lock. */
  readonly stored: StoredOutcome | null;
}

export interface CapacityChanges {
  readonly direction: CapacityDirection;
  readonly customerPk: bigint;
  readonly before: PoolSnapshot;
  readonly after: PoolSnapshot;
  readonly envelope: IdempotencyEnvelope | null;
}

/**
 * Grant or Revoke: a replay of the key, else the pool moved by `amount` (planGrant, planRevoke).
 * `envelope` is the request's capacityEnvelope, made once per call by the operation.
 */
export function planCapacity(
  direction: CapacityDirection,
  state: CapacityState,
  input: CapacityInput,
  envelope: IdempotencyEnvelope | null,
): WriteOutcome<CapacityChanges, PoolResult> {
  return refusable<WriteOutcome<CapacityChanges, PoolResult>>(() => {
    const replay = envelope === null ? null : outcomeToReplay(state.stored, { customerId: input.customerId, ...envelope });
    if (replay) return { kind: "replay", stored: replay };
    const { customerPk, pool } = state;
    if (direction === "REVOKE_CAPACITY" && (customerPk === null || pool === null)) {
      throw new BillingError("slot_pool_not_found", undefined, { wallet: input.wallet });
    }
    if (customerPk === null || pool === null) throw new Error("a grant's customer and pool were not created by its prefetch");
    const after = direction === "GRANT_CAPACITY" ? planGrant(pool, input.amount) : planRevoke(pool, input.amount, input.wallet);
    return {
      kind: "apply",
      changes: { direction, customerPk, before: pool, after, envelope },
      result: { pool: poolView(after), isIdempotentReplay: false },
    };
  });
}

/** What a Claim or Release decides from, locked in this order: the customer, its wallet's pools, the resource's latest holding. */
export interface HoldingState {
  /** null: no such customer. */
  readonly customerPk: bigint | null;
  /** All the wallet's pools. */
  readonly pools: readonly PoolSnapshot[];
  /** The resource's latest holding in the wallet; null when it never held one. */
  readonly holding: HoldingSnapshot | null;
}

export interface ClaimChanges {
  readonly customerPk: bigint;
  readonly before: PoolSnapshot;
  readonly after: PoolSnapshot;
}

export interface ReleaseChanges {
  readonly customerPk: bigint;
  readonly holding: HoldingSnapshot;
  readonly before: PoolSnapshot;
  readonly after: PoolSnapshot;
}

function poolOf(state: HoldingState, holding: HoldingSnapshot): PoolSnapshot {
  const pool = state.pools.find((p) => p.id === holding.poolId);
  if (!pool) throw new Error(`holding ${holding.id} points to pool ${holding.poolId}, not in its wallet`);
  return pool;
}

/**
 * Claim: a resource already holding a slot in the wallet gets its holding back as a replay;
 * otherwise the whole amount from one pool (planClaim). The new holding's id is the database's:
 * the answer's `holdingId` is filled by the apply.
 */
export function planClaimWrite(state: HoldingState, input: ClaimInput): WriteOutcome<ClaimChanges, HoldingResult> {
  return refusable<WriteOutcome<ClaimChanges, HoldingResult>>(() => {
    const { customerPk, holding } = state;
    if (customerPk === null) throw new BillingError("slot_pool_not_found", undefined, { wallet: input.wallet });
    if (holding !== null && !holding.released) {
      return { kind: "answer", result: { pool: poolView(poolOf(state, holding)), holdingId: holding.id, isIdempotentReplay: true } };
    }
    const candidates = input.source === null ? state.pools : state.pools.filter((p) => p.source === input.source);
    const after = planClaim(candidates, input.amount, input.wallet);
    const before = state.pools.find((p) => p.id === after.id);
    if (!before) throw new Error(`planClaim chose pool ${after.id}, which is not locked`);
    return {
      kind: "apply",
      changes: { customerPk, before, after },
      result: { pool: poolView(after), holdingId: PENDING_HOLDING_ID, isIdempotentReplay: false },
    };
  });
}

/** Stands for the id of the holding a Claim creates until the apply reads it back. */
export const PENDING_HOLDING_ID = -1n;

/**
 * Release: the holding's amount goes back to its pool. Its last holding already released → a
 * replay answering that holding; never held → slot_holding_not_found.
 */
export function planReleaseWrite(state: HoldingState, input: ReleaseInput): WriteOutcome<ReleaseChanges, HoldingResult> {
  return refusable<WriteOutcome<ReleaseChanges, HoldingResult>>(() => {
    const { customerPk, holding } = state;
    if (customerPk === null || holding === null) {
      throw new BillingError("slot_holding_not_found", undefined, { wallet: input.wallet, resource_id: input.resourceId });
    }
    const before = poolOf(state, holding);
    if (holding.released) return { kind: "answer", result: { pool: poolView(before), holdingId: holding.id, isIdempotentReplay: true } };
    const after = planRelease(before, holding);
    return {
      kind: "apply",
      changes: { customerPk, holding, before, after },
      result: { pool: poolView(after), holdingId: holding.id, isIdempotentReplay: false },
    };
  });
}
