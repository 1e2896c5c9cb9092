import { and, asc, eq, gt, inArray, lte, or, sql, type SQL } from "drizzle-orm";
import { mergeDeltas, type AccountDelta } from "../domain/account-deltas.js";
import type { AccountSnapshot } from "../domain/types.js";
import type { Db } from "./database.js";
import type { Tx } from "./run-transaction.js";
import { accounts } from "./schema.js";

type AccountRow = typeof accounts.$inferSelect;

export function toSnapshot(row: AccountRow): AccountSnapshot {
  return {
    id: row.id,
    creditType: row.creditType,
    source: row.source,
    startsAtMs: row.startsAtMs,
    expiresAtMs: row.expiresAtMs,
    total: row.total,
    used: row.used,
    frozen: row.frozen,
    createdAtMs: row.createdAt.getTime(),
  };
}

function activeAt(nowMs: number): SQL {
  return and(lte(accounts.startsAtMs, nowMs), gt(accounts.expiresAtMs, nowMs)) as SQL;
}

/**
 * Locks and returns the customer's ACTIVE accounts plus the accounts named in `alsoIds` (a hold's
 * accounts stay usable by its settlement even after they expire).
 */
export async function lockAccounts(
  tx: Tx,
  projectId: bigint,
  customerPk: bigint,
  nowMs: number,
  alsoIds: readonly bigint[] = [],
): Promise<AccountSnapshot[]> {
  const scope = alsoIds.length > 0 ? or(activeAt(nowMs), inArray(accounts.id, [...alsoIds])) : activeAt(nowMs);
  const rows = await tx
    .select()
    .from(accounts)
    .where(and(eq(accounts.projectId, projectId), eq(accounts.customerPk, customerPk), scope))
    .orderBy(asc(accounts.id))
    .for("update");
  return rows.map(toSnapshot);
}

export async function listAccounts(
  db: Db,
  projectId: bigint,
  customerPk: bigint,
  options: { activeAtMs?: number } = {},
): Promise<AccountSnapshot[]> {
  const conditions = [eq(accounts.projectId, projectId), eq(accounts.customerPk, customerPk)];
  if (options.activeAtMs !== undefined) conditions.push(activeAt(options.activeAtMs));
  const rows = await db.select().from(accounts).where(and(...conditions)).orderBy(asc(accounts.id));
  return rows.map(toSnapshot);
}

export interface AccountKey {
  readonly creditType: string;
  readonly source: string;
  readonly startsAtMs: number;
  readonly expiresAtMs: number;
}

/** Adds `amount` to the account with this key, creating it when missing; returns its id. */
export async function creditAccount(
  tx: Tx,
  projectId: bigint,
  customerPk: bigint,
  key: AccountKey,
  amount: bigint,
  nowMs: number,
): Promise<bigint> {
  const [result] = await tx
    .insert(accounts)
    .values({ projectId, customerPk, ...key, total: amount, createdAt: new Date(nowMs) })
    .onDuplicateKeyUpdate({
      // `total + ?` rather than VALUES(total): MySQL 8.0.20+ deprecates VALUES() here.
      set: { total: sql`${accounts.total} + ${amount}`, id: sql`LAST_INSERT_ID(${accounts.id})` },
    });
  return BigInt(result.insertId);
}

/** Applies per-account changes to used and frozen in one statement. */
export async function applyAccountDeltas(tx: Tx, deltas: readonly AccountDelta[]): Promise<void> {
  const changed = mergeDeltas(deltas).filter((d) => d.used !== 0n || d.frozen !== 0n);
  if (changed.length === 0) return;
  const ids = changed.map((d) => d.accountId);
  const caseOf = (pick: (d: AccountDelta) => bigint): SQL =>
    sql`CASE ${accounts.id} ${sql.join(
      changed.map((d) => sql`WHEN ${d.accountId} THEN ${pick(d)}`),
      sql` `,
    )} ELSE 0 END`;
  const [result] = await tx
    .update(accounts)
    .set({
      used: sql`${accounts.used} + ${caseOf((d) => d.used)}`,
      frozen: sql`${accounts.frozen} + ${caseOf((d) => d.frozen)}`,
    })
    .where(inArray(accounts.id, ids));
  if (result.affectedRows !== changed.length) {
    throw new Error(`account update touched ${result.affectedRows} rows, expected ${changed.length}`);
  }
}

export interface ExpiredAccount {
  readonly id: bigint;
  readonly projectId: bigint;
  readonly customerPk: bigint;
}

/** Accounts past their expiry whose leftover is not yet on the ledger. */
export async function listUnrecordedExpiries(db: Db, nowMs: number, limit: number): Promise<ExpiredAccount[]> {
  return db
    .select({ id: accounts.id, projectId: accounts.projectId, customerPk: accounts.customerPk })
    .from(accounts)
    .where(and(eq(accounts.expiryRecorded, false), lte(accounts.expiresAtMs, nowMs)))
    .orderBy(asc(accounts.expiresAtMs))
    .limit(limit);
}

/** Locks one account and returns it unless its expiry was already recorded. */
export async function lockUnrecordedExpiry(tx: Tx, id: bigint): Promise<AccountSnapshot | null> {
  const rows = await tx
    .select()
    .from(accounts)
    .where(and(eq(accounts.id, id), eq(accounts.expiryRecorded, false)))
    .for("update");
  return rows[0] ? toSnapshot(rows[0]) : null;
}

export async function markExpiryRecorded(tx: Tx, id: bigint): Promise<void> {
  await tx.update(accounts).set({ expiryRecorded: true }).where(eq(accounts.id, id));
}
