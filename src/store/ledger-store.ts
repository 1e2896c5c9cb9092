import { type SQL as DrizzleSQL, and, asc, count, desc, eq, gt, gte, inArray, lt, lte } from "drizzle-orm";
import { type SQL, sql } from "./sql.js";
import type { LedgerPosition } from "../domain/ledger-position.js";
import type { Metadata, Operation } from "../domain/types.js";
import type { Db } from "./database.js";
import { encodeJson } from "./json-codec.js";
import type { AccountSnapshot } from "../domain/types.js";
import { accountsFromRows } from "./accounts-store.js";
import type { Row } from "./run-transaction.js";
import { accounts, apiKeys, ledgerEntries, transactions } from "./schema.js";
import { rowsPart, type WritePart } from "./write-set.js";

export interface NewLedgerEntry {
  /** Its place in the customer's ledger and the balance it leaves (planned: domain/ledger-position.ts). */
  readonly position: LedgerPosition;
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
  /** Stored on entries without a transaction only: a transaction's entries show its own. */
  readonly description: string;
  readonly metadata: Metadata;
  readonly automatic: boolean;
  readonly nowMs: number;
  /** The key that made the entries; absent or null when the service writes them itself (sweeper, expiry). */
  readonly apiKeyId?: bigint | null;
  /** REFUND entries: the charge they give back from (their own reason and metadata are stored, not the charge's). */
  readonly reversesTransactionId?: string;
  /** VOID entries: the DEPOSIT entry whose credits they remove. */
  readonly reversesRecordId?: bigint;
}

const LEDGER_HEAD = sql`INSERT INTO ${ledgerEntries} (project_id, customer_pk, account_id, operation, amount, credit_type, source,
      transaction_pk, transaction_id, idempotency_key, business_type, description, metadata, automatic, overage, created_at,
      api_key_id, sequence, balance_total, balance_used, balance_frozen, reverses_transaction_id, reverses_record_id)`;

/**
 * The entries as new rows (write-set.ts puts them in one INSERT with the other writes' entries).
 * The description and metadata of a transaction are stored once, on its row, not copied into
 * each of its entries (a call touching thousands of accounts would copy 35 KB of metadata
 * thousands of times); listings read them from the transaction.
 */
export function ledgerPart(context: LedgerContext, entries: readonly NewLedgerEntry[]): WritePart {
  if (entries.length === 0) throw new Error("ledgerPart needs at least one entry");
  const ownText = context.transactionPk === null || context.reversesTransactionId !== undefined;
  const description = ownText ? context.description : "";
  const metadata = encodeJson(ownText ? context.metadata : {});
  const createdAt = new Date(context.nowMs);
  const rows = entries.map(
    (e) => sql`(${context.projectId}, ${context.customerPk}, ${e.accountId}, ${e.operation}, ${e.amount}, ${e.creditType},
      ${e.source}, ${context.transactionPk}, ${context.transactionId}, ${context.idempotencyKey}, ${context.businessType},
      ${description}, ${metadata}, ${context.automatic}, ${e.overage ?? false}, ${createdAt}, ${context.apiKeyId ?? null},
      ${e.position.sequence}, ${e.position.total}, ${e.position.used}, ${e.position.frozen},
      ${context.reversesTransactionId ?? null}, ${context.reversesRecordId ?? null})`,
  );
  return rowsPart("ledger_entries", LEDGER_HEAD, rows);
}

/**
 * EXPIRE entries: written by the service itself (automatic, no key, no transaction of their
 * own). `transactionId` names the settlement that returned the credits, or is empty when the
 * sweep recorded an account's leftover.
 */
export function expiryParts(
  context: { projectId: bigint; customerPk: bigint; transactionId: string; nowMs: number },
  entries: readonly Omit<NewLedgerEntry, "operation">[],
): WritePart[] {
  if (entries.length === 0) return [];
  return [
    ledgerPart(
      { ...context, transactionPk: null, idempotencyKey: "", businessType: 0, description: "", metadata: {}, automatic: true },
      entries.map((e) => ({ ...e, operation: "EXPIRE" })),
    ),
  ];
}

/** Which entries of one customer a listing reads; null fields do not filter. */
export interface LedgerFilter {
  readonly projectId: bigint;
  readonly customerPk: bigint;
  readonly operations: readonly Operation[];
  readonly transactionId: string | null;
  /** REFUND entries of this charge. */
  readonly reversesTransactionId: string | null;
  /** VOID entries of this deposit. */
  readonly reversesRecordId: bigint | null;
  readonly creditType: string | null;
  readonly createdAfterMs: number | null;
  readonly createdBeforeMs: number | null;
}

function ledgerConditions(f: LedgerFilter): DrizzleSQL[] {
  const conditions: DrizzleSQL[] = [eq(ledgerEntries.projectId, f.projectId), eq(ledgerEntries.customerPk, f.customerPk)];
  if (f.operations.length > 0) conditions.push(inArray(ledgerEntries.operation, [...f.operations]));
  if (f.transactionId !== null) conditions.push(eq(ledgerEntries.transactionId, f.transactionId));
  if (f.reversesTransactionId !== null) conditions.push(eq(ledgerEntries.reversesTransactionId, f.reversesTransactionId));
  if (f.reversesRecordId !== null) conditions.push(eq(ledgerEntries.reversesRecordId, f.reversesRecordId));
  if (f.creditType !== null) conditions.push(eq(ledgerEntries.creditType, f.creditType));
  if (f.createdAfterMs !== null) conditions.push(gte(ledgerEntries.createdAt, new Date(f.createdAfterMs)));
  if (f.createdBeforeMs !== null) conditions.push(lt(ledgerEntries.createdAt, new Date(f.createdBeforeMs)));
  return conditions;
}

/**
 * Entries with what a listing shows beside each: the prefix of the key that made it and its
 * transaction's description and metadata. A transaction's description and metadata are stored
 * once, on the transaction (see ledgerPart); entries without one (deposits, expiries) and refunds
 * carry their own.
 */
const selectLedgerViews = (db: Db, forceIndex?: string) =>
  db
    .select({ l: ledgerEntries, apiKeyPrefix: apiKeys.prefix, txDescription: transactions.description, txMetadata: transactions.metadata })
    .from(ledgerEntries, forceIndex === undefined ? undefined : { forceIndex })
    .leftJoin(apiKeys, eq(apiKeys.id, ledgerEntries.apiKeyId))
    .leftJoin(transactions, eq(transactions.id, ledgerEntries.transactionPk));

/** A row of selectLedgerPage or selectTransactionEntries. */
export type LedgerViewRow = Awaited<ReturnType<typeof selectLedgerViews>>[number];

/**
 * Up to `limit` matching entries in the sequences [`fromSequence`, `beforeSequence`) of the
 * customer's ledger (no bound for null), newest first: read backwards along (customer_pk,
 * sequence). Left to itself the optimizer took (project_id, customer_pk, id) and filtered the
 * sequence row by row, so a page 65,000 entries deep read 150,000 rows (130 ms) where the range
 * reads 101 (0.1 ms).
 */
export function selectLedgerPage(db: Db, f: LedgerFilter, range: { from: bigint | null; before: bigint | null }, limit: number) {
  const conditions = ledgerConditions(f);
  if (range.before !== null) conditions.push(lt(ledgerEntries.sequence, range.before));
  if (range.from !== null) conditions.push(gte(ledgerEntries.sequence, range.from));
  return selectLedgerViews(db, "ledger_customer_sequence_uq")
    .where(and(...conditions))
    .orderBy(desc(ledgerEntries.sequence))
    .limit(limit);
}

/**
 * How many entries match in the sequences (`after`, `through`]: from the first when `after` is
 * null (the optimizer's choice of index: a whole customer's entries), else along (customer_pk,
 * sequence), the range alone.
 */
export async function countLedgerEntries(db: Db, f: LedgerFilter, range: { after: bigint | null; through: bigint }): Promise<number> {
  const conditions = ledgerConditions(f);
  conditions.push(lte(ledgerEntries.sequence, range.through));
  if (range.after !== null) conditions.push(gt(ledgerEntries.sequence, range.after));
  const [row] = await db
    .select({ n: count() })
    .from(ledgerEntries, range.after === null ? undefined : { forceIndex: "ledger_customer_sequence_uq" })
    .where(and(...conditions));
  return row?.n ?? 0;
}

/**
 * Every entry of one transaction, oldest first (as selectLedgerPage reads them): its Deduct or
 * Freeze, what settled it, and the EXPIRE entries its settlement wrote (they name it by
 * transaction_id). Read through the customer's ledger index (the transaction names the customer).
 */
export function selectTransactionEntries(db: Db, projectId: bigint, transactionId: string) {
  const customerPk = sql`(SELECT customer_pk FROM ${transactions} WHERE project_id = ${projectId} AND transaction_id = ${transactionId})`;
  return selectLedgerViews(db)
    .where(
      and(eq(ledgerEntries.projectId, projectId), eq(ledgerEntries.customerPk, customerPk), eq(ledgerEntries.transactionId, transactionId)),
    )
    .orderBy(asc(ledgerEntries.id));
}

/**
 * The key and creation of account `a`, under the names accountFromRow reads (figures come from the
 * query, and so does whether its expiry was recorded by then: an EXPIRE entry among them, which
 * the sweeper writes even for 0 left; `accounts.expiry_recorded` is today's).
 */
const ACCOUNT_KEY_COLUMNS = sql`a.id AS a_id, a.credit_type AS a_credit_type, a.source AS a_source, a.starts_at_ms AS a_starts_at_ms,
  a.expires_at_ms AS a_expires_at_ms, a.created_at AS a_created_at`;

/**
 * A customer's accounts as the ledger had them at `asOfMs`: right after the last entry made at or
 * before then, so with every entry before it in the ledger's order (its `sequence`), each
 * account's figures summed from those entries by the ledger equations (total = Σ DEPOSIT − Σ VOID;
 * used = Σ DEDUCT + Σ CONSUME − Σ REFUND; frozen = Σ FREEZE − Σ CONSUME (not overage) − Σ
 * UNFREEZE). Entries' times follow the order only as far as the instances' clocks agree: one
 * instance's entry can come later than another's and carry an earlier time. Counting entries by
 * their time alone would then answer a state the ledger never had (a deduct without the deposit
 * it spent, a negative balance); a prefix of the order is always one it had.
 */
export async function accountsAsOf(db: Db, projectId: bigint, customerPk: bigint, asOfMs: number): Promise<AccountSnapshot[]> {
  const [rows] = (await db.execute(sql`SELECT ${ACCOUNT_KEY_COLUMNS},
      SUM(CASE WHEN l.operation = 'DEPOSIT' THEN l.amount WHEN l.operation = 'VOID' THEN -l.amount ELSE 0 END) AS a_total,
      SUM(CASE WHEN l.operation IN ('DEDUCT', 'CONSUME') THEN l.amount WHEN l.operation = 'REFUND' THEN -l.amount ELSE 0 END) AS a_used,
      SUM(CASE WHEN l.operation = 'FREEZE' THEN l.amount WHEN l.operation = 'UNFREEZE' THEN -l.amount
               WHEN l.operation = 'CONSUME' AND l.overage = FALSE THEN -l.amount ELSE 0 END) AS a_frozen,
      MAX(CASE WHEN l.operation = 'EXPIRE' THEN 1 ELSE 0 END) AS a_expiry_recorded
    FROM ${ledgerEntries} l JOIN ${accounts} a ON a.id = l.account_id
    WHERE l.project_id = ${projectId} AND l.customer_pk = ${customerPk}
      AND l.sequence <= (SELECT MAX(m.sequence) FROM ${ledgerEntries} m
        WHERE m.project_id = ${projectId} AND m.customer_pk = ${customerPk} AND m.created_at <= ${new Date(asOfMs)})
    GROUP BY a.id
    ORDER BY a.id`)) as unknown as [Row[]];
  return accountsFromRows(rows);
}
