import { BillingError } from "../errors/billing-error.js";
import { DEFAULT_SLOT_SOURCE, RESOURCE_ID_PATTERN, SLOT_CAPACITY_MAX, WALLET_PATTERN } from "./limits.js";

/** Slots: capacity pools per (customer, wallet, source) and the holdings claimed from them. Pure. */

export const POOL_STATUSES = ["ACTIVE", "SUSPENDED"] as const;
export type PoolStatus = (typeof POOL_STATUSES)[number];

export const SLOT_EVENT_TYPES = ["GRANT_CAPACITY", "REVOKE_CAPACITY", "CLAIM", "RELEASE"] as const;
export type SlotEventType = (typeof SLOT_EVENT_TYPES)[number];

/** A pool as read under lock. */
export interface PoolSnapshot {
  readonly id: bigint;
  readonly wallet: string;
  readonly source: string;
  readonly capacity: bigint;
  readonly inUse: bigint;
  readonly status: PoolStatus;
  readonly createdAtMs: number;
}

/** A pool as answered: Velobase's `{pool_id, wallet, source, capacity, in_use, available, status}`. */
export interface PoolView {
  readonly poolId: bigint;
  readonly wallet: string;
  readonly source: string;
  readonly capacity: bigint;
  readonly inUse: bigint;
  readonly available: bigint;
  readonly status: PoolStatus;
}

/** A pool as an event's facts (string values: docs/events.md). */
export const poolFacts = (pool: PoolView): Record<string, string> => ({
  pool_id: pool.poolId.toString(),
  wallet: pool.wallet,
  source: pool.source,
  capacity: pool.capacity.toString(),
  in_use: pool.inUse.toString(),
});

/** Grant and Revoke answer the pool after the change. */
export interface PoolResult {
  readonly pool: PoolView;
  readonly isIdempotentReplay: boolean;
}

/** Claim and Release answer the pool the holding is in, and the holding. */
export interface HoldingResult {
  readonly pool: PoolView;
  readonly holdingId: bigint;
  readonly isIdempotentReplay: boolean;
}

/** A holding as read under lock; `released` once Release gave its capacity back. */
export interface HoldingSnapshot {
  readonly id: bigint;
  readonly poolId: bigint;
  readonly amount: bigint;
  readonly released: boolean;
}

export const poolView = (p: PoolSnapshot): PoolView => ({
  poolId: p.id,
  wallet: p.wallet,
  source: p.source,
  capacity: p.capacity,
  inUse: p.inUse,
  available: p.capacity - p.inUse,
  status: p.status,
});

export function parsePoolStatus(raw: string): PoolStatus {
  const found = POOL_STATUSES.find((s) => s === raw);
  if (!found) throw new Error(`unknown pool status ${raw}`);
  return found;
}

function assertPool(p: PoolSnapshot): PoolSnapshot {
  if (p.inUse < 0n || p.inUse > p.capacity) throw new Error(`pool ${p.id} breaks 0 <= in_use <= capacity`);
  return p;
}

/** Grant: capacity grows by `amount`, up to SLOT_CAPACITY_MAX. */
export function planGrant(pool: PoolSnapshot, amount: bigint): PoolSnapshot {
  const capacity = pool.capacity + amount;
  if (capacity > SLOT_CAPACITY_MAX) {
    throw new BillingError("invalid_argument", `A pool holds at most ${SLOT_CAPACITY_MAX}.`, {
      field: "amount",
      requested: amount,
      capacity: pool.capacity,
    });
  }
  return assertPool({ ...pool, capacity });
}

/** Revoke: capacity shrinks by `amount`, never below what is in use. */
export function planRevoke(pool: PoolSnapshot | null, amount: bigint, wallet: string): PoolSnapshot {
  if (pool === null) throw new BillingError("slot_pool_not_found", undefined, { wallet });
  const capacity = pool.capacity - amount;
  if (capacity < pool.inUse) {
    throw new BillingError("slot_capacity_below_in_use", undefined, {
      requested: amount,
      capacity: pool.capacity,
      in_use: pool.inUse,
    });
  }
  return assertPool({ ...pool, capacity });
}

/** Claim order: the "default" source first, then oldest, then by id (a total order). */
export function compareClaimOrder(a: PoolSnapshot, b: PoolSnapshot): number {
  const aDefault = a.source === DEFAULT_SLOT_SOURCE ? 0 : 1;
  const bDefault = b.source === DEFAULT_SLOT_SOURCE ? 0 : 1;
  if (aDefault !== bDefault) return aDefault - bDefault;
  if (a.createdAtMs !== b.createdAtMs) return a.createdAtMs - b.createdAtMs;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Claim: the whole amount from the first ACTIVE pool with room, in claim order. `pools` are the
 * candidates (the wallet's, or the one of the requested source). None → slot_pool_not_found;
 * not enough room in total → slot_insufficient_capacity; enough in total but in no single pool
 * → slot_split_required. Returns the chosen pool after the claim.
 */
export function planClaim(pools: readonly PoolSnapshot[], amount: bigint, wallet: string): PoolSnapshot {
  if (pools.length === 0) throw new BillingError("slot_pool_not_found", undefined, { wallet });
  const open = pools.filter((p) => p.status === "ACTIVE").sort(compareClaimOrder);
  const room = (p: PoolSnapshot) => p.capacity - p.inUse;
  const chosen = open.find((p) => room(p) >= amount);
  if (chosen) return assertPool({ ...chosen, inUse: chosen.inUse + amount });
  const available = open.reduce((sum, p) => sum + room(p), 0n);
  const facts = { wallet, requested: amount, available };
  if (available < amount) throw new BillingError("slot_insufficient_capacity", undefined, facts);
  throw new BillingError("slot_split_required", undefined, {
    ...facts,
    largest_available: open.reduce((max, p) => (room(p) > max ? room(p) : max), 0n),
  });
}

/** Release: the holding's amount goes back to its pool. */
export function planRelease(pool: PoolSnapshot, holding: HoldingSnapshot): PoolSnapshot {
  if (holding.poolId !== pool.id) throw new Error(`holding ${holding.id} is not in pool ${pool.id}`);
  if (holding.released) throw new Error(`holding ${holding.id} is already released`);
  return assertPool({ ...pool, inUse: pool.inUse - holding.amount });
}

/** Field parsers of the slot requests, shared by the transports. */

export function parseWallet(raw: string): string {
  if (raw === "") throw new BillingError("wallet_required", undefined, { field: "wallet" });
  if (!WALLET_PATTERN.test(raw)) {
    throw new BillingError("invalid_argument", "wallet must be 1-64 characters of [A-Za-z0-9_.:@-].", { field: "wallet" });
  }
  return raw;
}

export function parseResourceId(raw: string): string {
  if (raw === "") throw new BillingError("resource_id_required", undefined, { field: "resource_id" });
  if (!RESOURCE_ID_PATTERN.test(raw)) {
    throw new BillingError("invalid_argument", "resource_id must be 1-128 characters of [A-Za-z0-9_.:@-].", { field: "resource_id" });
  }
  return raw;
}
