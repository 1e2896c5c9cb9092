import { and, asc, eq, lte, sql } from "drizzle-orm";
import type { HoldState } from "../domain/hold.js";
import type { AllocationLine, AutoAction, Metadata, TransactionKind, TransactionStatus } from "../domain/types.js";
import type { Db } from "./database.js";
import { decodeJson, encodeJson } from "./json-codec.js";
import type { Tx } from "./run-transaction.js";
import { accounts, allocations, customers, transactions } from "./schema.js";

export interface TransactionRow extends HoldState {
  readonly pk: bigint;
  readonly transactionId: string;
  readonly customerPk: bigint;
  readonly customerId: string;
  readonly returnedAmount: bigint;
  readonly overageAmount: bigint;
  readonly creditTypes: string[];
  readonly businessType: number;
  readonly description: string;
  readonly metadata: Metadata;
  readonly requestFingerprint: string;
  readonly response: string;
  readonly settleResponse: string | null;
  readonly autoAction: AutoAction | null;
  readonly autoAtMs: number | null;
  readonly createdAtMs: number;
  readonly settledAtMs: number | null;
}

const columns = { t: transactions, customerId: customers.customerId };

function toRow({ t, customerId }: { t: typeof transactions.$inferSelect; customerId: string }): TransactionRow {
  return {
    pk: t.id,
    transactionId: t.transactionId,
    customerPk: t.customerPk,
    customerId,
    kind: t.kind as TransactionKind,
    status: t.status as TransactionStatus,
    amount: t.amount,
    consumedAmount: t.consumedAmount,
    returnedAmount: t.returnedAmount,
    overageAmount: t.overageAmount,
    creditTypes: decodeJson<string[]>(t.creditTypes),
    businessType: t.businessType,
    description: t.description,
    metadata: decodeJson<Metadata>(t.metadata),
    requestFingerprint: t.requestFingerprint,
    response: t.response,
    settleResponse: t.settleResponse,
    autoAction: t.autoAction as AutoAction | null,
    autoAtMs: t.autoAt?.getTime() ?? null,
    settledAutomatically: t.settledAutomatically,
    createdAtMs: t.createdAt.getTime(),
    settledAtMs: t.settledAt?.getTime() ?? null,
  };
}

/** Reads a transaction with its customer's public id; `lock` takes the row for settlement. */
export async function findTransaction(
  db: Db | Tx,
  projectId: bigint,
  transactionId: string,
  options: { lock?: boolean } = {},
): Promise<TransactionRow | null> {
  const query = db
    .select(columns)
    .from(transactions)
    .innerJoin(customers, eq(customers.id, transactions.customerPk))
    .where(and(eq(transactions.projectId, projectId), eq(transactions.transactionId, transactionId)));
  const rows = options.lock ? await query.for("update") : await query;
  return rows[0] ? toRow(rows[0]) : null;
}

export interface NewTransaction {
  readonly transactionId: string;
  readonly customerPk: bigint;
  readonly kind: TransactionKind;
  readonly status: TransactionStatus;
  readonly amount: bigint;
  readonly creditTypes: readonly string[];
  readonly businessType: number;
  readonly description: string;
  readonly metadata: Metadata;
  readonly requestFingerprint: string;
  readonly response: string;
  readonly autoAction: AutoAction | null;
  readonly autoAtMs: number | null;
  readonly nowMs: number;
}

export async function insertTransaction(tx: Tx, projectId: bigint, t: NewTransaction): Promise<bigint> {
  const [result] = await tx.insert(transactions).values({
    projectId,
    transactionId: t.transactionId,
    customerPk: t.customerPk,
    kind: t.kind,
    status: t.status,
    amount: t.amount,
    creditTypes: encodeJson(t.creditTypes),
    businessType: t.businessType,
    description: t.description,
    metadata: encodeJson(t.metadata),
    requestFingerprint: t.requestFingerprint,
    response: t.response,
    autoAction: t.autoAction,
    autoAt: t.autoAtMs === null ? null : new Date(t.autoAtMs),
    createdAt: new Date(t.nowMs),
  });
  return BigInt(result.insertId);
}

export interface Settlement {
  readonly status: "CONSUMED" | "UNFROZEN";
  readonly consumedAmount: bigint;
  readonly returnedAmount: bigint;
  readonly overageAmount: bigint;
  readonly settleResponse: string;
  readonly automatic: boolean;
  readonly nowMs: number;
}

/** FROZEN → CONSUMED | UNFROZEN; the WHERE on status makes a second settlement impossible. */
export async function settleTransaction(tx: Tx, pk: bigint, s: Settlement): Promise<void> {
  const [result] = await tx
    .update(transactions)
    .set({
      status: s.status,
      consumedAmount: s.consumedAmount,
      returnedAmount: s.returnedAmount,
      overageAmount: s.overageAmount,
      settleResponse: s.settleResponse,
      settledAutomatically: s.automatic,
      settledAt: new Date(s.nowMs),
    })
    .where(and(eq(transactions.id, pk), eq(transactions.status, "FROZEN")));
  if (result.affectedRows !== 1) throw new Error(`hold ${pk} was not FROZEN when settled`);
}

export interface AllocationRow {
  readonly accountId: bigint;
  readonly amount: bigint;
}

export async function insertAllocations(
  tx: Tx,
  projectId: bigint,
  transactionPk: bigint,
  lines: readonly AllocationRow[],
): Promise<void> {
  if (lines.length === 0) return;
  await tx
    .insert(allocations)
    .values(lines.map((l, seq) => ({ projectId, transactionPk, seq, accountId: l.accountId, amount: l.amount })));
}

export async function listAllocations(db: Db | Tx, transactionPk: bigint): Promise<AllocationRow[]> {
  return db
    .select({ accountId: allocations.accountId, amount: allocations.amount })
    .from(allocations)
    .where(eq(allocations.transactionPk, transactionPk))
    .orderBy(asc(allocations.seq));
}

export interface DueHold {
  readonly transactionId: string;
  readonly projectId: bigint;
  readonly customerPk: bigint;
}

/** Holds whose auto-settlement deadline has passed, oldest deadline first. */
export async function listDueHolds(db: Db, nowMs: number, limit: number): Promise<DueHold[]> {
  return db
    .select({
      transactionId: transactions.transactionId,
      projectId: transactions.projectId,
      customerPk: transactions.customerPk,
    })
    .from(transactions)
    .where(and(eq(transactions.status, "FROZEN"), lte(transactions.autoAt, new Date(nowMs))))
    .orderBy(asc(transactions.autoAt))
    .limit(limit);
}


/** A transaction's allocation with each account's credit type and source, in order. */
export async function listAllocationLines(db: Db, transactionPk: bigint): Promise<AllocationLine[]> {
  return db
    .select({
      accountId: allocations.accountId,
      creditType: sql<string>`COALESCE(${accounts.creditType}, '')`,
      source: sql<string>`COALESCE(${accounts.source}, '')`,
      amount: allocations.amount,
    })
    .from(allocations)
    .leftJoin(accounts, eq(accounts.id, allocations.accountId))
    .where(eq(allocations.transactionPk, transactionPk))
    .orderBy(asc(allocations.seq));
}

/** Moves a hold's auto-settlement deadline, so one that keeps failing does not block the queue. */
export async function postponeAutoSettlement(db: Db, projectId: bigint, transactionId: string, untilMs: number): Promise<void> {
  await db
    .update(transactions)
    .set({ autoAt: new Date(untilMs) })
    .where(and(eq(transactions.projectId, projectId), eq(transactions.transactionId, transactionId), eq(transactions.status, "FROZEN")));
}
