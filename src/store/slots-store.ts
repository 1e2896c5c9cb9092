import { type SQL as DrizzleSQL, and, count, desc, eq, gte, inArray, lt } from "drizzle-orm";
import { type SQL, sql } from "./sql.js";
import { parsePoolStatus, SLOT_EVENT_TYPES, type HoldingSnapshot, type PoolSnapshot, type SlotEventType } from "../domain/slots.js";
import type { Db, Reader } from "./database.js";
import { bigOf, closedValueOf, msOf, stringOf } from "./row-values.js";
import { guardedUpdateSql } from "./row-count-guard.js";
import type { Row } from "./run-transaction.js";
import { slotEvents, slotHoldings, slotPools } from "./schema.js";

/** Columns every pool read selects, under stable names. */
const POOL_COLUMNS = sql`p.id AS p_id, p.wallet AS p_wallet, p.source AS p_source, p.capacity AS p_capacity,
  p.in_use AS p_in_use, p.status AS p_status, p.created_at AS p_created_at`;

/** Read back as untrusted: the status is parsed, the invariant asserted by the plans that use it. */
export function poolFromRow(row: Row): PoolSnapshot {
  return {
    id: bigOf(row.p_id),
    wallet: stringOf(row.p_wallet),
    source: stringOf(row.p_source),
    capacity: bigOf(row.p_capacity),
    inUse: bigOf(row.p_in_use),
    status: parsePoolStatus(stringOf(row.p_status)),
    createdAtMs: msOf(row.p_created_at),
  };
}

export const poolsFromRows = (rows: readonly Row[]): PoolSnapshot[] => rows.map(poolFromRow);

/** Locks a customer's pools of one wallet (of one source, when given), in id order. Run after the customer lock. */
export function lockPoolsSql(projectId: bigint, customerPk: bigint | SQL, wallet: string, source: string | null): SQL {
  const bySource = source === null ? sql`` : sql` AND p.source = ${source}`;
  return sql`SELECT ${POOL_COLUMNS} FROM ${slotPools} p
    WHERE p.project_id = ${projectId} AND p.customer_pk = ${customerPk} AND p.wallet = ${wallet}${bySource}
    ORDER BY p.id FOR UPDATE`;
}

/**
 * Creates the pool unless it exists (empty, ACTIVE); either way the row is then locked by this
 * transaction (INSERT … ON DUPLICATE KEY UPDATE locks the row it finds). Read it with lockPoolsSql.
 */
export function ensurePoolSql(projectId: bigint, customerPk: bigint | SQL, wallet: string, source: string, nowMs: number): SQL {
  return sql`INSERT INTO ${slotPools} (project_id, customer_pk, wallet, source, capacity, in_use, status, created_at)
    VALUES (${projectId}, ${customerPk}, ${wallet}, ${source}, 0, 0, 'ACTIVE', ${new Date(nowMs)})
    ON DUPLICATE KEY UPDATE id = id`;
}

/**
 * Moves a pool from `before` to `after` as deltas: the CHECK constraints (0 <= in_use <=
 * capacity) refuse any result the plan got wrong, instead of the write silently missing.
 * Guarded: a pool that is not `before` (as read under lock) fails the batch before COMMIT.
 */
export function updatePoolSql(before: PoolSnapshot, after: PoolSnapshot): SQL[] {
  if (before.id !== after.id) throw new Error("updatePoolSql moves one pool");
  return guardedUpdateSql(
    sql`UPDATE ${slotPools} SET capacity = capacity + ${after.capacity - before.capacity},
      in_use = in_use + ${after.inUse - before.inUse}
    WHERE id = ${before.id} AND capacity = ${before.capacity} AND in_use = ${before.inUse}`,
    1,
  );
}

const HOLDING_COLUMNS = sql`h.id AS h_id, h.pool_id AS h_pool_id, h.amount AS h_amount, h.held_resource_id AS h_held`;

function holdingFromRow(row: Row | undefined): HoldingSnapshot | null {
  if (!row) return null;
  return {
    id: bigOf(row.h_id),
    poolId: bigOf(row.h_pool_id),
    amount: bigOf(row.h_amount),
    released: row.h_held === null,
  };
}

/** The id of a resource's live holding in a wallet (at most one: the UNIQUE on held_resource_id), as a subquery. */
export const liveHoldingIdSql = (projectId: bigint, customerPk: bigint, wallet: string, resourceId: string): SQL =>
  sql`(SELECT id FROM ${slotHoldings} WHERE project_id = ${projectId} AND customer_pk = ${customerPk} AND wallet = ${wallet}
    AND held_resource_id = ${resourceId})`;

export const holdingFromRows = (rows: readonly Row[]): HoldingSnapshot | null => holdingFromRow(rows[0]);

/**
 * Locks a resource's latest holding in a wallet: the held one when there is one (a new holding
 * is only made when none is held), else the last released one.
 */
export function lockLatestHoldingSql(projectId: bigint, customerPk: bigint | SQL, wallet: string, resourceId: string): SQL {
  return sql`SELECT ${HOLDING_COLUMNS} FROM ${slotHoldings} h
    WHERE h.project_id = ${projectId} AND h.customer_pk = ${customerPk} AND h.wallet = ${wallet} AND h.resource_id = ${resourceId}
    ORDER BY h.id DESC LIMIT 1 FOR UPDATE`;
}

export interface NewHolding {
  readonly projectId: bigint;
  readonly customerPk: bigint;
  readonly poolId: bigint;
  readonly wallet: string;
  readonly resourceId: string;
  readonly amount: bigint;
  readonly nowMs: number;
}

export function insertHoldingSql(h: NewHolding): SQL {
  return sql`INSERT INTO ${slotHoldings} (project_id, customer_pk, pool_id, wallet, resource_id, held_resource_id, amount, created_at)
    VALUES (${h.projectId}, ${h.customerPk}, ${h.poolId}, ${h.wallet}, ${h.resourceId}, ${h.resourceId}, ${h.amount}, ${new Date(h.nowMs)})`;
}

/** Guarded: affects one row only while the holding is held, else fails the batch before COMMIT. */
export const releaseHoldingSql = (holdingId: bigint, nowMs: number): SQL[] =>
  guardedUpdateSql(
    sql`UPDATE ${slotHoldings} SET held_resource_id = NULL, released_at = ${new Date(nowMs)}
    WHERE id = ${holdingId} AND held_resource_id IS NOT NULL`,
    1,
  );

export interface NewSlotEvent {
  readonly projectId: bigint;
  readonly customerPk: bigint | SQL;
  readonly poolId: bigint | SQL;
  readonly holdingId: bigint | SQL | null;
  readonly type: SlotEventType;
  readonly wallet: string;
  readonly source: string;
  readonly amount: bigint;
  readonly resourceId: string | null;
  readonly description: string | null;
  readonly idempotencyKey: string | null;
  readonly nowMs: number;
  /** The key that made the change. */
  readonly apiKeyId: bigint | null;
}

export function insertSlotEventSql(e: NewSlotEvent): SQL {
  return sql`INSERT INTO ${slotEvents} (project_id, customer_pk, pool_id, holding_id, type, wallet, source, amount,
      resource_id, description, idempotency_key, created_at, api_key_id)
    VALUES (${e.projectId}, ${e.customerPk}, ${e.poolId}, ${e.holdingId}, ${e.type}, ${e.wallet}, ${e.source}, ${e.amount},
      ${e.resourceId}, ${e.description}, ${e.idempotencyKey}, ${new Date(e.nowMs)}, ${e.apiKeyId})`;
}

/** A customer's pools, optionally of one wallet, without locks. */
export async function readPools(db: Db, projectId: bigint, customerPk: bigint, wallet: string | null): Promise<PoolSnapshot[]> {
  const conditions = [eq(slotPools.projectId, projectId), eq(slotPools.customerPk, customerPk)];
  if (wallet !== null) conditions.push(eq(slotPools.wallet, wallet));
  const rows = await db
    .select()
    .from(slotPools)
    .where(and(...conditions))
    .orderBy(slotPools.id);
  return rows.map((r) => ({
    id: r.id,
    wallet: r.wallet,
    source: r.source,
    capacity: r.capacity,
    inUse: r.inUse,
    status: parsePoolStatus(r.status),
    createdAtMs: r.createdAt.getTime(),
  }));
}

/** Which events of one customer a listing reads; null or empty fields do not filter; from inclusive, to exclusive, on created_at. */
export interface SlotEventFilter {
  readonly projectId: bigint;
  readonly customerPk: bigint;
  readonly wallet: string | null;
  readonly resourceId: string | null;
  /** Deduplicated and sorted; empty means all. */
  readonly types: readonly SlotEventType[];
  readonly sources: readonly string[];
  readonly fromMs: number | null;
  readonly toMs: number | null;
}

export interface SlotEventRow {
  readonly id: bigint;
  readonly type: SlotEventType;
  readonly poolId: bigint;
  readonly holdingId: bigint | null;
  readonly wallet: string;
  readonly source: string;
  readonly amount: bigint;
  readonly resourceId: string | null;
  readonly description: string | null;
  readonly idempotencyKey: string | null;
  readonly createdAtMs: number;
}

function slotEventConditions(f: SlotEventFilter): DrizzleSQL[] {
  const conditions: DrizzleSQL[] = [eq(slotEvents.projectId, f.projectId), eq(slotEvents.customerPk, f.customerPk)];
  if (f.wallet !== null) conditions.push(eq(slotEvents.wallet, f.wallet));
  if (f.resourceId !== null) conditions.push(eq(slotEvents.resourceId, f.resourceId));
  if (f.types.length > 0) conditions.push(inArray(slotEvents.type, [...f.types]));
  if (f.sources.length > 0) conditions.push(inArray(slotEvents.source, [...f.sources]));
  if (f.fromMs !== null) conditions.push(gte(slotEvents.createdAt, new Date(f.fromMs)));
  if (f.toMs !== null) conditions.push(lt(slotEvents.createdAt, new Date(f.toMs)));
  return conditions;
}

const slotEventTypeOf = (raw: string): SlotEventType => closedValueOf(raw, SLOT_EVENT_TYPES, "slot_events.type");

/** Up to `limit` events below `beforeId`, newest first, and how many match the filter in all. */
export async function readSlotEvents(
  db: Db,
  filter: SlotEventFilter,
  beforeId: bigint | null,
  limit: number,
): Promise<{ rows: SlotEventRow[]; totalCount: number }> {
  const conditions = slotEventConditions(filter);
  const [rows, counted] = await Promise.all([
    db
      .select()
      .from(slotEvents)
      .where(and(...conditions, ...(beforeId === null ? [] : [lt(slotEvents.id, beforeId)])))
      .orderBy(desc(slotEvents.id))
      .limit(limit),
    db
      .select({ n: count() })
      .from(slotEvents)
      .where(and(...conditions)),
  ]);
  return {
    rows: rows.map((r) => ({
      id: r.id,
      type: slotEventTypeOf(r.type),
      poolId: r.poolId,
      holdingId: r.holdingId,
      wallet: r.wallet,
      source: r.source,
      amount: r.amount,
      resourceId: r.resourceId,
      description: r.description,
      idempotencyKey: r.idempotencyKey,
      createdAtMs: r.createdAt.getTime(),
    })),
    totalCount: counted[0]?.n ?? 0,
  };
}

/** Per pool: capacity and in_use as its events say, and what its live holdings hold (verify). */
const POOLS_WITH_HISTORY = sql`SELECT p.id, p.capacity, p.in_use,
    COALESCE(e.granted, 0) - COALESCE(e.revoked, 0) AS capacity_from_events,
    COALESCE(e.claimed, 0) - COALESCE(e.released, 0) AS in_use_from_events,
    COALESCE(h.held, 0) AS held
  FROM ${slotPools} p
  LEFT JOIN (SELECT pool_id,
      SUM(CASE WHEN type = 'GRANT_CAPACITY' THEN amount ELSE 0 END) AS granted,
      SUM(CASE WHEN type = 'REVOKE_CAPACITY' THEN amount ELSE 0 END) AS revoked,
      SUM(CASE WHEN type = 'CLAIM' THEN amount ELSE 0 END) AS claimed,
      SUM(CASE WHEN type = 'RELEASE' THEN amount ELSE 0 END) AS released
    FROM ${slotEvents} GROUP BY pool_id) e ON e.pool_id = p.id
  LEFT JOIN (SELECT pool_id, SUM(amount) AS held FROM ${slotHoldings} WHERE held_resource_id IS NOT NULL GROUP BY pool_id) h
    ON h.pool_id = p.id`;

const ORPHAN_EVENT_POOLS = sql`SELECT DISTINCT e.pool_id FROM ${slotEvents} e
  LEFT JOIN ${slotPools} p ON p.id = e.pool_id WHERE p.id IS NULL`;

export interface PoolHistory {
  readonly id: bigint;
  readonly capacity: bigint;
  readonly inUse: bigint;
  readonly capacityFromEvents: bigint;
  readonly inUseFromEvents: bigint;
  readonly held: bigint;
}

/** Every pool with what its events and holdings say, and event pool ids that name no pool. */
export async function readPoolsWithHistory(db: Reader): Promise<{ pools: PoolHistory[]; orphanPoolIds: bigint[] }> {
  const [pools] = (await db.execute(POOLS_WITH_HISTORY)) as unknown as [Row[]];
  const [orphans] = (await db.execute(ORPHAN_EVENT_POOLS)) as unknown as [Row[]];
  return {
    pools: pools.map((r) => ({
      id: bigOf(r.id),
      capacity: bigOf(r.capacity),
      inUse: bigOf(r.in_use),
      capacityFromEvents: bigOf(r.capacity_from_events),
      inUseFromEvents: bigOf(r.in_use_from_events),
      held: bigOf(r.held),
    })),
    orphanPoolIds: orphans.map((r) => bigOf(r.pool_id)),
  };
}
