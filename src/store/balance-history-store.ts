import { sql } from "./sql.js";
import type { Db } from "./database.js";
import { bigOf, msOf } from "./row-values.js";
import type { Row } from "./run-transaction.js";
import { ledgerEntries } from "./schema.js";

/** A customer's available and frozen credits just after one ledger entry. */
export interface BalancePoint {
  readonly entryId: bigint;
  readonly atMs: number;
  readonly available: bigint;
  readonly frozen: bigint;
}

/**
 * The customer's balance after each of its ledger entries made in [fromMs, toMs), oldest first;
 * the latest `limit` of them when there are more. Each entry carries the balance it left
 * (balance_after: the ledger's total, used and frozen, docs/architecture.md), read by the
 * customer's ledger index, newest first.
 */
export async function balanceHistory(
  db: Db,
  customer: { readonly projectId: bigint; readonly customerPk: bigint },
  fromMs: number,
  toMs: number,
  limit: number,
): Promise<BalancePoint[]> {
  const [rows] = (await db.execute(
    sql`SELECT id, created_at, balance_total - balance_used - balance_frozen AS available, balance_frozen AS frozen
      FROM ${ledgerEntries}
      WHERE project_id = ${customer.projectId} AND customer_pk = ${customer.customerPk}
        AND created_at >= ${new Date(fromMs)} AND created_at < ${new Date(toMs)}
      ORDER BY id DESC LIMIT ${limit}`,
  )) as unknown as [Row[]];
  return rows
    .map((row) => ({ entryId: bigOf(row.id), atMs: msOf(row.created_at), available: bigOf(row.available), frozen: bigOf(row.frozen) }))
    .reverse();
}
