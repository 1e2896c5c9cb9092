import { and, count, desc, eq, gte, inArray, lt, sql, type SQL } from "drizzle-orm";
import type { Metadata, Operation } from "../domain/types.js";
import type { Db } from "./database.js";
import { encodeJson } from "./json-codec.js";
import { ledgerEntries } from "./schema.js";

export interface NewLedgerEntry {
  readonly operation: Operation;
  readonly accountId: bigint | SQL;
  readonly amount: bigint;
  readonly creditType: string;
  readonly source: string;
  readonly overage?: boolean;
}

/** What every entry of one operation shares. */
export interface LedgerContext {
  readonly projectId: bigint;
  readonly customerPk: bigint | SQL;
  /** A literal pk, or SQL such as `@tx` naming the row inserted earlier in the batch. */
  readonly transactionPk: bigint | SQL | null;
  readonly transactionId: string;
  readonly idempotencyKey: string;
  readonly businessType: number;
  readonly description: string;
  readonly metadata: Metadata;
  readonly automatic: boolean;
  readonly nowMs: number;
}

/** Appends the entries in one statement; their ids are consecutive from LAST_INSERT_ID(). */
export function appendLedgerSql(context: LedgerContext, entries: readonly NewLedgerEntry[]): SQL {
  if (entries.length === 0) throw new Error("appendLedgerSql needs at least one entry");
  const metadata = encodeJson(context.metadata);
  const createdAt = new Date(context.nowMs);
  const rows = entries.map(
    (e) => sql`(${context.projectId}, ${context.customerPk}, ${e.accountId}, ${e.operation}, ${e.amount}, ${e.creditType},
      ${e.source}, ${context.transactionPk}, ${context.transactionId}, ${context.idempotencyKey}, ${context.businessType},
      ${context.description}, ${metadata}, ${context.automatic}, ${e.overage ?? false}, ${createdAt})`,
  );
  return sql`INSERT INTO ${ledgerEntries} (project_id, customer_pk, account_id, operation, amount, credit_type, source,
      transaction_pk, transaction_id, idempotency_key, business_type, description, metadata, automatic, overage, created_at)
    VALUES ${sql.join(rows, sql`, `)}`;
}

/** Which entries of one customer a listing reads; null fields do not filter. */
export interface LedgerFilter {
  readonly projectId: bigint;
  readonly customerPk: bigint;
  readonly operations: readonly Operation[];
  readonly transactionId: string | null;
  readonly creditType: string | null;
  readonly createdAfterMs: number | null;
  readonly createdBeforeMs: number | null;
}

function ledgerConditions(f: LedgerFilter): SQL[] {
  const conditions: SQL[] = [eq(ledgerEntries.projectId, f.projectId), eq(ledgerEntries.customerPk, f.customerPk)];
  if (f.operations.length > 0) conditions.push(inArray(ledgerEntries.operation, [...f.operations]));
  if (f.transactionId !== null) conditions.push(eq(ledgerEntries.transactionId, f.transactionId));
  if (f.creditType !== null) conditions.push(eq(ledgerEntries.creditType, f.creditType));
  if (f.createdAfterMs !== null) conditions.push(gte(ledgerEntries.createdAt, new Date(f.createdAfterMs)));
  if (f.createdBeforeMs !== null) conditions.push(lt(ledgerEntries.createdAt, new Date(f.createdBeforeMs)));
  return conditions;
}

/** Up to `limit` matching entries older than `beforeId` (all when null), newest first. */
export function selectLedgerPage(db: Db, f: LedgerFilter, beforeId: bigint | null, limit: number) {
  const conditions = ledgerConditions(f);
  if (beforeId !== null) conditions.push(lt(ledgerEntries.id, beforeId));
  return db
    .select()
    .from(ledgerEntries)
    .where(and(...conditions))
    .orderBy(desc(ledgerEntries.id))
    .limit(limit);
}

/** How many entries match, on every page together. */
export async function countLedgerEntries(db: Db, f: LedgerFilter): Promise<number> {
  const [row] = await db
    .select({ n: count() })
    .from(ledgerEntries)
    .where(and(...ledgerConditions(f)));
  return row?.n ?? 0;
}
