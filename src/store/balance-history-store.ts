import { sql } from "drizzle-orm";
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
 * How each operation moves the available and the frozen balance. A CONSUME flagged overage is
 * charged from available credits; any other CONSUME spends what its hold froze.
 */
const AVAILABLE_DELTA = sql`CASE operation WHEN 'DEPOSIT' THEN amount WHEN 'UNFREEZE' THEN amount
  WHEN 'DEDUCT' THEN -amount WHEN 'FREEZE' THEN -amount WHEN 'EXPIRE' THEN -amount
  WHEN 'CONSUME' THEN IF(overage, -amount, 0) ELSE 0 END`;
const FROZEN_DELTA = sql`CASE operation WHEN 'FREEZE' THEN amount WHEN 'UNFREEZE' THEN -amount
  WHEN 'CONSUME' THEN IF(overage, 0, -amount) ELSE 0 END`;
const RUNNING = sql`OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)`;

/**
 * The customer's balance after each of its ledger entries made in [fromMs, toMs), oldest first;
 * the latest `limit` of them when there are more. Until every entry stores its `balance_after`
 * (the events issue), it is the running sum of the customer's entries (a window function over
 * its whole ledger, read by ledger_customer_idx): credits deposited to start later count from
 * their deposit, not from their start.
 */
export async function balanceHistory(
  db: Db,
  customer: { readonly projectId: bigint; readonly customerPk: bigint },
  fromMs: number,
  toMs: number,
  limit: number,
): Promise<BalancePoint[]> {
  const [rows] = (await db.execute(
    sql`SELECT h.id, h.created_at, h.available, h.frozen FROM (
        SELECT id, created_at, SUM(${AVAILABLE_DELTA}) ${RUNNING} AS available, SUM(${FROZEN_DELTA}) ${RUNNING} AS frozen
        FROM ${ledgerEntries} WHERE project_id = ${customer.projectId} AND customer_pk = ${customer.customerPk}
      ) h
      WHERE h.created_at >= ${new Date(fromMs)} AND h.created_at < ${new Date(toMs)}
      ORDER BY h.id DESC LIMIT ${limit}`,
  )) as unknown as [Row[]];
  return rows
    .map((row) => ({ entryId: bigOf(row.id), atMs: msOf(row.created_at), available: bigOf(row.available), frozen: bigOf(row.frozen) }))
    .reverse();
}
