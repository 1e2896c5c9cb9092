import { sql } from "./sql.js";
import type { Db, Reader } from "./database.js";

// The reads of `verify` (operations/verify.ts): whole-table scans, grouped by the database.

/**
 * Runs `work` on one snapshot of the database (REPEATABLE READ, a consistent snapshot; it only
 * reads), so writes committing meanwhile are seen whole or not at all: verify may run while the
 * service writes.
 */
export function inOneSnapshot<T>(db: Db, work: (reader: Reader) => Promise<T>): Promise<T> {
  // No READ ONLY: drizzle writes it without the comma MariaDB needs after WITH CONSISTENT SNAPSHOT.
  return db.transaction((tx) => work(tx), { isolationLevel: "repeatable read", withConsistentSnapshot: true });
}

export type VerifyRow = Record<string, string | number | null>;

async function rows(db: Reader, query: ReturnType<typeof sql>): Promise<VerifyRow[]> {
  const [result] = (await db.execute(query)) as unknown as [VerifyRow[]];
  return result;
}

/** Ledger sums per account: each is one GROUP BY scan of the ledger, so no index is needed for it. */
const LEDGER_BY_ACCOUNT = sql`SELECT account_id,
    SUM(CASE WHEN operation = 'DEPOSIT' THEN amount WHEN operation = 'VOID' THEN -amount ELSE 0 END) AS total,
    SUM(CASE WHEN operation IN ('DEDUCT', 'CONSUME') THEN amount WHEN operation = 'REFUND' THEN -amount ELSE 0 END) AS used,
    SUM(CASE WHEN operation = 'FREEZE' THEN amount
             WHEN operation = 'UNFREEZE' THEN -amount
             WHEN operation = 'CONSUME' AND overage = 0 THEN -amount ELSE 0 END) AS frozen,
    SUM(CASE WHEN operation = 'EXPIRE' THEN amount ELSE 0 END) AS expired,
    COUNT(*) AS entries
  FROM ledger_entries GROUP BY account_id`;

const LEDGER_BY_TRANSACTION = sql`SELECT transaction_pk,
    SUM(CASE WHEN operation IN ('DEDUCT', 'FREEZE') THEN amount ELSE 0 END) AS spent,
    SUM(CASE WHEN operation = 'CONSUME' THEN amount ELSE 0 END) AS consumed,
    SUM(CASE WHEN operation = 'CONSUME' AND overage = 1 THEN amount ELSE 0 END) AS overage,
    SUM(CASE WHEN operation = 'UNFREEZE' THEN amount ELSE 0 END) AS returned,
    SUM(CASE WHEN operation = 'REFUND' THEN amount ELSE 0 END) AS refunded
  FROM ledger_entries WHERE transaction_pk IS NOT NULL GROUP BY transaction_pk`;

/** Accounts given back more by a charge's refunds than the charge took from them (none when the ledger is sound). */
const OVER_REFUNDED_ACCOUNTS = sql`SELECT transaction_pk, account_id,
    SUM(CASE WHEN operation IN ('DEDUCT', 'CONSUME') THEN amount ELSE 0 END) AS charged,
    SUM(CASE WHEN operation = 'REFUND' THEN amount ELSE 0 END) AS refunded
  FROM ledger_entries WHERE transaction_pk IS NOT NULL GROUP BY transaction_pk, account_id
  HAVING refunded > charged`;

/** Voids that name no deposit of their account, or remove more than it added (none when the ledger is sound). */
const UNSOUND_VOIDS = sql`SELECT v.reverses_record_id AS record_id, SUM(v.amount) AS voided, MAX(d.amount) AS deposited,
    MAX(d.operation) AS operation, COUNT(DISTINCT v.account_id) AS accounts, MAX(v.account_id) AS account_id,
    MAX(d.account_id) AS deposit_account_id
  FROM ledger_entries v LEFT JOIN ledger_entries d ON d.id = v.reverses_record_id
  WHERE v.operation = 'VOID' GROUP BY v.reverses_record_id
  HAVING deposited IS NULL OR operation <> 'DEPOSIT' OR voided > deposited OR accounts <> 1 OR account_id <> deposit_account_id`;

export const ledgerByAccount = (db: Reader) => rows(db, LEDGER_BY_ACCOUNT);
export const overRefundedAccounts = (db: Reader) => rows(db, OVER_REFUNDED_ACCOUNTS);
export const unsoundVoids = (db: Reader) => rows(db, UNSOUND_VOIDS);
export const ledgerByTransaction = (db: Reader) => rows(db, LEDGER_BY_TRANSACTION);

/** Every account's stored figures. */
export const accountFigures = (db: Reader) => rows(db, sql`SELECT id, total, used, frozen, expiry_recorded FROM accounts`);

/** Every transaction's stored figures, with the sum of its allocation. */
export const transactionFigures = (db: Reader) =>
  rows(
    db,
    sql`SELECT t.id, t.transaction_id, t.kind, t.status, t.amount, t.consumed_amount, t.returned_amount, t.overage_amount,
        t.refunded_amount,
        (SELECT COALESCE(SUM(al.amount), 0) FROM allocations al WHERE al.transaction_pk = t.id) AS allocated
      FROM transactions t`,
  );

/** Entries of every customer in ledger order, a page after (customer_pk, sequence), by the unique index on them. */
export const ledgerPositionsPage = (db: Reader, after: { customerPk: bigint; sequence: bigint }, limit: number) =>
  rows(
    db,
    sql`SELECT id, customer_pk, account_id, operation, amount, overage, sequence, balance_total, balance_used, balance_frozen
      FROM ledger_entries
      WHERE customer_pk > ${after.customerPk} OR (customer_pk = ${after.customerPk} AND sequence > ${after.sequence})
      ORDER BY customer_pk, sequence
      LIMIT ${limit}`,
  );

/** Every customer's stored ledger position. */
export const customerLedgerPositions = (db: Reader) =>
  rows(db, sql`SELECT id, ledger_sequence, ledger_total, ledger_used, ledger_frozen FROM customers`);
