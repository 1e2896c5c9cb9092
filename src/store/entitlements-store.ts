import { type SQL as DrizzleSQL, and, asc, count, desc, eq, gte, inArray, lt } from "drizzle-orm";
import { type SQL, sql } from "./sql.js";
import {
  ENTITLEMENT_EVENT_TYPES,
  type EntitlementEventType,
  type EntitlementFields,
  type EntitlementView,
} from "../domain/entitlements.js";
import type { Metadata } from "../domain/types.js";
import type { Db } from "./database.js";
import { decodeMetadata } from "./json-codec.js";
import { guardedUpdateSql } from "./row-count-guard.js";
import { bigOf, closedValueOf, stringOf } from "./row-values.js";
import type { Row } from "./run-transaction.js";
import { entitlementEvents, entitlements } from "./schema.js";

type EntitlementRecord = typeof entitlements.$inferSelect;

// Plain JSON both ways, like every metadata column: the stored outcomes' bigint tag would turn a
// caller's own `{"$bigint": …}` object into a number, or fail to read it back.
const metadataOf = (text: string | null): Metadata | null => (text === null ? null : decodeMetadata(text));
const optionalNumber = (v: unknown): number | null => (v === null || v === undefined ? null : Number(bigOf(v)));
const optionalString = (v: unknown): string | null => (v === null || v === undefined ? null : stringOf(v));

function viewOf(r: EntitlementRecord): EntitlementView {
  return {
    entitlementId: r.id,
    featureKey: r.featureKey,
    value: r.value,
    validFromMs: r.validFromMs,
    validUntilMs: r.validUntilMs,
    source: r.source,
    description: r.description,
    metadata: metadataOf(r.metadata),
  };
}

/** Locks one entitlement of a customer (run after the customer lock); no row when there is none. */
export function lockEntitlementSql(projectId: bigint, customerPk: bigint | SQL, featureKey: string): SQL {
  return sql`SELECT e.id, e.feature_key, e.value, e.valid_from_ms, e.valid_until_ms, e.source, e.description, e.metadata
    FROM ${entitlements} e
    WHERE e.project_id = ${projectId} AND e.customer_pk = ${customerPk} AND e.feature_key = ${featureKey}
    FOR UPDATE`;
}

/** The id of a customer's entitlement of one feature (at most one: UNIQUE), as a subquery. */
export const entitlementIdSql = (projectId: bigint, customerPk: bigint, featureKey: string): SQL =>
  sql`(SELECT id FROM ${entitlements} WHERE project_id = ${projectId} AND customer_pk = ${customerPk} AND feature_key = ${featureKey})`;

export function entitlementFromRow(row: Row | undefined): EntitlementView | null {
  if (!row) return null;
  return {
    entitlementId: bigOf(row.id),
    featureKey: stringOf(row.feature_key),
    value: stringOf(row.value),
    validFromMs: optionalNumber(row.valid_from_ms),
    validUntilMs: optionalNumber(row.valid_until_ms),
    source: optionalString(row.source),
    description: optionalString(row.description),
    metadata: metadataOf(optionalString(row.metadata)),
  };
}

const metadataText = (m: Metadata | null): string | null => (m === null ? null : JSON.stringify(m));

export function insertEntitlementSql(projectId: bigint, customerPk: bigint, f: EntitlementFields, nowMs: number): SQL {
  const at = new Date(nowMs);
  return sql`INSERT INTO ${entitlements} (project_id, customer_pk, feature_key, value, valid_from_ms, valid_until_ms, source,
      description, metadata, created_at, updated_at)
    VALUES (${projectId}, ${customerPk}, ${f.featureKey}, ${f.value}, ${f.validFromMs}, ${f.validUntilMs}, ${f.source},
      ${f.description}, ${metadataText(f.metadata)}, ${at}, ${at})`;
}

/** Guarded: an entitlement that is gone fails the batch before COMMIT. */
export function updateEntitlementSql(id: bigint, f: EntitlementFields, nowMs: number): SQL[] {
  return guardedUpdateSql(
    sql`UPDATE ${entitlements} SET value = ${f.value}, valid_from_ms = ${f.validFromMs}, valid_until_ms = ${f.validUntilMs},
      source = ${f.source}, description = ${f.description}, metadata = ${metadataText(f.metadata)}, updated_at = ${new Date(nowMs)}
    WHERE id = ${id}`,
    1,
  );
}

/** Guarded like the update. */
export const deleteEntitlementSql = (id: bigint): SQL[] => guardedUpdateSql(sql`DELETE FROM ${entitlements} WHERE id = ${id}`, 1);

export interface NewEntitlementEvent {
  readonly projectId: bigint;
  readonly customerPk: bigint;
  readonly entitlementId: bigint | SQL;
  readonly featureKey: string;
  readonly type: EntitlementEventType;
  readonly oldValue: string | null;
  readonly newValue: string | null;
  readonly source: string | null;
  readonly description: string | null;
  readonly nowMs: number;
  /** The key that made the change. */
  readonly apiKeyId: bigint | null;
}

export function insertEntitlementEventSql(e: NewEntitlementEvent): SQL {
  return sql`INSERT INTO ${entitlementEvents} (project_id, customer_pk, entitlement_id, feature_key, type, old_value, new_value,
      source, description, created_at, api_key_id)
    VALUES (${e.projectId}, ${e.customerPk}, ${e.entitlementId}, ${e.featureKey}, ${e.type}, ${e.oldValue}, ${e.newValue},
      ${e.source}, ${e.description}, ${new Date(e.nowMs)}, ${e.apiKeyId})`;
}

export async function readEntitlement(db: Db, projectId: bigint, customerPk: bigint, featureKey: string): Promise<EntitlementView | null> {
  const rows = await db
    .select()
    .from(entitlements)
    .where(and(eq(entitlements.projectId, projectId), eq(entitlements.customerPk, customerPk), eq(entitlements.featureKey, featureKey)));
  const row = rows[0];
  return row ? viewOf(row) : null;
}

/** A customer's entitlements by feature_key, optionally only some keys. */
export async function readEntitlements(
  db: Db,
  projectId: bigint,
  customerPk: bigint,
  featureKeys: readonly string[],
): Promise<EntitlementView[]> {
  const conditions = [eq(entitlements.projectId, projectId), eq(entitlements.customerPk, customerPk)];
  if (featureKeys.length > 0) conditions.push(inArray(entitlements.featureKey, [...featureKeys]));
  const rows = await db
    .select()
    .from(entitlements)
    .where(and(...conditions))
    .orderBy(asc(entitlements.featureKey));
  return rows.map(viewOf);
}

/** Which events of one customer a listing reads; null or empty fields do not filter; from inclusive, to exclusive, on created_at. */
export interface EntitlementEventFilter {
  readonly projectId: bigint;
  readonly customerPk: bigint;
  readonly featureKey: string | null;
  /** Deduplicated and sorted; empty means all. */
  readonly types: readonly EntitlementEventType[];
  readonly fromMs: number | null;
  readonly toMs: number | null;
}

export interface EntitlementEventRow {
  readonly id: bigint;
  readonly featureKey: string;
  readonly type: EntitlementEventType;
  readonly oldValue: string | null;
  readonly newValue: string | null;
  readonly source: string | null;
  readonly description: string | null;
  readonly createdAtMs: number;
}

const eventTypeOf = (raw: string): EntitlementEventType => closedValueOf(raw, ENTITLEMENT_EVENT_TYPES, "entitlement_events.type");

/** Up to `limit` events below `beforeId`, newest first, and how many match the filter in all. */
export async function readEntitlementEvents(
  db: Db,
  f: EntitlementEventFilter,
  beforeId: bigint | null,
  limit: number,
): Promise<{ rows: EntitlementEventRow[]; totalCount: number }> {
  const conditions: DrizzleSQL[] = [eq(entitlementEvents.projectId, f.projectId), eq(entitlementEvents.customerPk, f.customerPk)];
  if (f.featureKey !== null) conditions.push(eq(entitlementEvents.featureKey, f.featureKey));
  if (f.types.length > 0) conditions.push(inArray(entitlementEvents.type, [...f.types]));
  if (f.fromMs !== null) conditions.push(gte(entitlementEvents.createdAt, new Date(f.fromMs)));
  if (f.toMs !== null) conditions.push(lt(entitlementEvents.createdAt, new Date(f.toMs)));
  const [rows, counted] = await Promise.all([
    db
      .select()
      .from(entitlementEvents)
      .where(and(...conditions, ...(beforeId === null ? [] : [lt(entitlementEvents.id, beforeId)])))
      .orderBy(desc(entitlementEvents.id))
      .limit(limit),
    db
      .select({ n: count() })
      .from(entitlementEvents)
      .where(and(...conditions)),
  ]);
  return {
    rows: rows.map((r) => ({
      id: r.id,
      featureKey: r.featureKey,
      type: eventTypeOf(r.type),
      oldValue: r.oldValue,
      newValue: r.newValue,
      source: r.source,
      description: r.description,
      createdAtMs: r.createdAt.getTime(),
    })),
    totalCount: counted[0]?.n ?? 0,
  };
}
