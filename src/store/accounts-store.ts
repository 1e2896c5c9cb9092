import { and, asc, eq, lte } from "drizzle-orm";
import { type DueCursor, notOfCustomersSql, pastCursorSql } from "./due-order.js";
import { type SQL, sql } from "./sql.js";
import type { LedgerPosition } from "../domain/ledger-position.js";
import type { AccountKey } from "../domain/plans/deposit-plan.js";
import type { AccountSnapshot, Balance } from "../domain/types.js";
import { NO_BALANCE } from "../domain/account-status.js";
import type { Db } from "./database.js";
import { bigOf, boolOf, msOf, numberOf, stringOf } from "./row-values.js";
import type { Row } from "./run-transaction.js";
import { accounts, customers } from "./schema.js";
import { guardedUpdateSql } from "./row-count-guard.js";
import { chunksOf } from "./statement-chunks.js";
import type { CustomerRef } from "../domain/customer-ref.js";
import { customerPkSql, customersNamedSql } from "./customers-store.js";

/** Columns every account read selects, as `a.*` would, under stable names. */
export const ACCOUNT_COLUMNS = sql`a.id AS a_id, a.credit_type AS a_credit_type, a.source AS a_source,
  a.starts_at_ms AS a_starts_at_ms, a.expires_at_ms AS a_expires_at_ms, a.total AS a_total, a.used AS a_used,
  a.frozen AS a_frozen, a.created_at AS a_created_at, a.expiry_recorded AS a_expiry_recorded`;

/** An account from a row selected with ACCOUNT_COLUMNS; null for a LEFT JOIN without match. */
export function accountFromRow(row: Row): AccountSnapshot | null {
  if (row.a_id === null || row.a_id === undefined) return null;
  return {
    id: bigOf(row.a_id),
    creditType: stringOf(row.a_credit_type),
    source: stringOf(row.a_source),
    startsAtMs: numberOf(row.a_starts_at_ms),
    expiresAtMs: numberOf(row.a_expires_at_ms),
    total: bigOf(row.a_total),
    used: bigOf(row.a_used),
    frozen: bigOf(row.a_frozen),
    createdAtMs: msOf(row.a_created_at),
    expiryRecorded: boolOf(row.a_expiry_recorded),
  };
}

export function accountsFromRows(rows: readonly Row[]): AccountSnapshot[] {
  return rows.map(accountFromRow).filter((a): a is AccountSnapshot => a !== null);
}

/** Ids of the accounts in rows selected with ACCOUNT_COLUMNS whose expiry is on the ledger already. */
export function expiryRecordedIdsFromRows(rows: readonly Row[]): Set<bigint> {
  return new Set(rows.filter((row) => row.a_id != null && boolOf(row.a_expiry_recorded)).map((row) => bigOf(row.a_id)));
}

/**
 * SQL condition: account `a` (or the account named `alias`) is ACTIVE at nowMs (started, not
 * expired, its expiry not recorded: as accountStatus, so an instance whose clock runs behind never
 * spends credits another has already expired).
 */
export const activeAccountSql = (nowMs: number, alias: SQL = sql`a`): SQL =>
  sql`(${alias}.starts_at_ms <= ${nowMs} AND ${alias}.expires_at_ms > ${nowMs} AND ${alias}.expiry_recorded = FALSE)`;

/**
 * activeAccountSql for a locking read of a customer's accounts: the same rows, read by the
 * spending order index's (project, customer, expiry not recorded) prefix alone, so never the
 * customer's past (accounts whose expiry is recorded). With `expires_at_ms > now` usable, MariaDB
 * reads a range on the index's third column, and under FOR UPDATE it locks the record just past
 * the range (the next customer's first account) before seeing that it ends the range: two lists
 * of neighbouring customers then deadlocked. Read by the prefix, the record past it is compared
 * before any lock (READ COMMITTED takes no gap lock), so a customer's accounts are all it locks.
 */
export const activeAccountLockingSql = (nowMs: number, alias: SQL = sql`a`): SQL =>
  sql`(${alias}.starts_at_ms <= ${nowMs} AND ${alias}.expires_at_ms + 0 > ${nowMs} AND ${alias}.expiry_recorded = FALSE)`;

/**
 * Locks the customer row (the serialization point of every write on a customer) and, in the
 * same statement, the accounts matching `accountScope` (which names them by id: read by primary
 * key, never by a scan, which under FOR UPDATE would lock every account it read), in id order. One row per account, or
 * one row with NULL account columns when none matches; no row when the customer does not exist.
 */
export function lockCustomerAccountsSql(customerCondition: SQL, accountScope: SQL, options: { skipLocked?: boolean } = {}): SQL {
  return sql`SELECT c.id AS c_pk, ${ACCOUNT_COLUMNS}
    FROM ${customers} c
    LEFT JOIN ${accounts} a FORCE INDEX (PRIMARY) ON a.project_id = c.project_id AND a.customer_pk = c.id AND ${accountScope}
    WHERE ${customerCondition}
    ORDER BY a.id
    FOR UPDATE${options.skipLocked ? sql` SKIP LOCKED` : sql``}`;
}

/**
 * The customer, then those of these accounts whose expiry (or start) is still unrecorded; both
 * SKIP LOCKED (the sweeper never waits).
 */
export const lockUnrecordedAccountsSql = (kind: AccountRecordKind, customerPk: bigint, accountIds: readonly bigint[]): SQL =>
  lockCustomerAccountsSql(
    sql`c.id = ${customerPk}`,
    sql`a.id IN (${sql.join(
      accountIds.map((id) => sql`${id}`),
      sql`, `,
    )}) AND ${kind === "expiry" ? sql`a.expiry_recorded = FALSE` : sql`a.start_recorded = FALSE`}`,
    {
      skipLocked: true,
    },
  );

/** Locks the customer row: the serialization point of every write on a customer. */
export function lockCustomerSql(customerCondition: SQL, options: { skipLocked?: boolean } = {}): SQL {
  return sql`SELECT c.id AS c_pk FROM ${customers} c WHERE ${customerCondition} FOR UPDATE${options.skipLocked ? sql` SKIP LOCKED` : sql``}`;
}

/** ` AND <alias>.credit_type IN (…)`, or nothing for every type. */
const creditTypesSql = (alias: SQL, creditTypes: readonly string[]): SQL =>
  creditTypes.length === 0
    ? sql``
    : sql` AND ${alias}.credit_type IN (${sql.join(
        creditTypes.map((t) => sql`${t}`),
        sql`, `,
      )})`;

/** The customers whose spends read one selection of credit types (none: every type). */
export interface SpendSelectionGroup {
  readonly creditTypes: readonly string[];
  readonly customers: readonly CustomerRef[];
}

/**
 * The first `limit` spendable accounts (ACTIVE, something available) of each customer of each
 * group, locked, by customer in spending order: soonest expiry, never-expiring last, then oldest,
 * then id, as compareSpendingOrder. One statement for a whole list, run after the customers'
 * lock: each group ranks its customers' accounts of its credit types (the spending order index,
 * on (project_id, customer_pk, expiry_recorded, expires_at_ms, created_at), reads only theirs
 * whose expiry is not recorded), and the ranked ids are locked by
 * primary key (STRAIGHT_JOIN: read the other way round, the join would scan every account). An
 * account two groups chose comes once.
 */
export function lockFirstSpendableSql(groups: readonly SpendSelectionGroup[], nowMs: number, limit: number): SQL {
  const only = groups.length === 1 ? groups[0] : undefined;
  const one = only?.customers.length === 1 ? only.customers[0] : undefined;
  // One customer (a call alone): the plain LIMIT costs the database less than ranking.
  if (only && one) {
    return sql`SELECT a.customer_pk AS a_customer_pk, ${ACCOUNT_COLUMNS}
      FROM ${accounts} a FORCE INDEX (accounts_spending_order_idx)
      WHERE a.project_id = ${one.projectId} AND a.customer_pk = ${customerPkSql(one.projectId, one.customerId)} AND ${activeAccountLockingSql(nowMs)}
        AND a.total - a.used - a.frozen > 0${creditTypesSql(sql`a`, only.creditTypes)}
      ORDER BY a.expires_at_ms, a.created_at, a.id LIMIT ${limit}
      FOR UPDATE`;
  }
  // The customers are joined by their ids (key-lists.ts): half of what a subquery each cost.
  // The ranked ids are a derived table, which FOR UPDATE does not lock; the chosen accounts are
  // then read by primary key, pinned (FORCE INDEX): MariaDB otherwise chose to scan all of
  // `accounts` for them through a join buffer (on a small table), locking every customer's
  // accounts, so lists of different customers waited on each other and two instances' lists
  // deadlocked (3 % of calls over 50 customers, some answered service_unavailable).
  const ranked = groups.map(
    (g) => sql`SELECT r.id FROM (
        SELECT s.id, ROW_NUMBER() OVER (PARTITION BY s.customer_pk ORDER BY s.expires_at_ms, s.created_at, s.id) AS rn
        FROM ${customers} c JOIN ${accounts} s ON s.project_id = c.project_id AND s.customer_pk = c.id
        WHERE (${customersNamedSql(g.customers, sql`c`)}) AND ${activeAccountSql(nowMs, sql`s`)} AND s.total - s.used - s.frozen > 0${creditTypesSql(sql`s`, g.creditTypes)}
      ) r WHERE r.rn <= ${limit}`,
  );
  return sql`SELECT a.customer_pk AS a_customer_pk, ${ACCOUNT_COLUMNS}
    FROM (${sql.join(ranked, sql` UNION `)}) chosen STRAIGHT_JOIN ${accounts} a FORCE INDEX (PRIMARY) ON a.id = chosen.id
    ORDER BY a.customer_pk, a.expires_at_ms, a.created_at, a.id
    FOR UPDATE`;
}

/**
 * These customers' accounts, by the accounts' customer index: `a.project_id IN (…) AND
 * a.customer_pk IN (…)`, which names no other customer's (a customer's pk is unique across
 * projects). A pk may be a scalar subquery (a hold's owner), a constant to the optimizer.
 */
export function accountsOfCustomersSql(customersOf: readonly { readonly projectId: bigint; readonly customerPk: bigint | SQL }[]): SQL {
  const list = (values: readonly (bigint | SQL)[]) =>
    sql.join(
      [...new Set(values)].map((v) => sql`${v}`),
      sql`, `,
    );
  return sql`a.project_id IN (${list(customersOf.map((c) => c.projectId))}) AND a.customer_pk IN (${list(customersOf.map((c) => c.customerPk))})`;
}

/**
 * The balance over ACTIVE accounts of each customer of `customersScope` (accountsOfCustomersSql),
 * each row with its `customer_pk` (none for a customer with no ACTIVE account). No locks: read
 * under the customers'.
 */
export const activeBalancesSql = (customersScope: SQL, nowMs: number): SQL =>
  sql`SELECT a.customer_pk, COALESCE(SUM(a.total), 0) AS total, COALESCE(SUM(a.used), 0) AS used, COALESCE(SUM(a.frozen), 0) AS frozen
    FROM ${accounts} a WHERE ${customersScope} AND ${activeAccountSql(nowMs)} GROUP BY a.customer_pk`;

export function balanceFromRow(row: Row | undefined): Balance {
  if (!row) throw new Error("balance query returned no row");
  const total = bigOf(row.total);
  const used = bigOf(row.used);
  const frozen = bigOf(row.frozen);
  return { total, used, frozen, available: total - used - frozen };
}

/** The id of the account with this key, as a subquery (for rows written after the account in one batch). */
export const accountIdByKeySql = (projectId: bigint, customerPk: bigint | SQL, key: AccountKey): SQL =>
  sql`(SELECT id FROM ${accounts} WHERE project_id = ${projectId} AND customer_pk = ${customerPk}
    AND credit_type = ${key.creditType} AND source = ${key.source} AND starts_at_ms = ${key.startsAtMs}
    AND expires_at_ms = ${key.expiresAtMs})`;

/** The account with this key (at most one: the key is UNIQUE), locked; run after the customer's lock. */
export function lockAccountByKeySql(projectId: bigint, customerPk: bigint | SQL, key: AccountKey): SQL {
  return sql`SELECT ${ACCOUNT_COLUMNS} FROM ${accounts} a
    WHERE a.project_id = ${projectId} AND a.customer_pk = ${customerPk} AND a.credit_type = ${key.creditType}
      AND a.source = ${key.source} AND a.starts_at_ms = ${key.startsAtMs} AND a.expires_at_ms = ${key.expiresAtMs}
    FOR UPDATE`;
}

/** Adds `amount` to the account with this key, creating it when missing; LAST_INSERT_ID() is its id. */
export function creditAccountSql(projectId: bigint, customerPk: bigint | SQL, key: AccountKey, amount: bigint, nowMs: number): SQL {
  // `total + ?` rather than VALUES(total): MySQL 8.0.20+ deprecates VALUES() here.
  // An account that has started is created with its start recorded; one that starts later is
  // left to the sweeper (recordStartsFrom), which re-decides the customer's alerts then.
  return sql`INSERT INTO ${accounts} (project_id, customer_pk, credit_type, source, starts_at_ms, expires_at_ms, total, created_at, start_recorded)
    VALUES (${projectId}, ${customerPk}, ${key.creditType}, ${key.source}, ${key.startsAtMs}, ${key.expiresAtMs}, ${amount}, ${new Date(nowMs)}, ${key.startsAtMs <= nowMs})
    ON DUPLICATE KEY UPDATE total = total + ${amount}, id = LAST_INSERT_ID(id)`;
}

/** A customer's accounts in id order (only those ACTIVE at `activeAtMs` when given), through the one mapper. */
export async function listAccounts(
  db: Db,
  projectId: bigint,
  customerPk: bigint,
  options: { activeAtMs?: number } = {},
): Promise<AccountSnapshot[]> {
  const active = options.activeAtMs === undefined ? sql`` : sql` AND ${activeAccountSql(options.activeAtMs)}`;
  const [rows] = (await db.execute(
    sql`SELECT ${ACCOUNT_COLUMNS} FROM ${accounts} a WHERE a.project_id = ${projectId} AND a.customer_pk = ${customerPk}${active} ORDER BY a.id`,
  )) as unknown as [Row[]];
  return accountsFromRows(rows);
}

/** An account the sweeper records: its expiry (leftover on the ledger) or its start (alerts re-decided). */
export interface SweptAccountRow {
  readonly id: bigint;
  readonly projectId: bigint;
  readonly customerPk: bigint;
  /** Its place in the order read (due time, then id): where the next read goes on from. */
  readonly after: DueCursor;
}

/** What the sweeper records of an account, and the columns of its flag and due time. */
export type AccountRecordKind = "expiry" | "start";
const RECORDED = {
  expiry: { flag: accounts.expiryRecorded, dueAtMs: accounts.expiresAtMs },
  start: { flag: accounts.startRecorded, dueAtMs: accounts.startsAtMs },
} as const;

/**
 * Up to `limit` accounts whose expiry (or start) has come and is not yet recorded, soonest first,
 * after `after` when given and not of the customers in `busy` (as listDueHolds).
 */
export async function listUnrecordedAccounts(
  db: Db,
  kind: AccountRecordKind,
  nowMs: number,
  limit: number,
  after: DueCursor | null = null,
  busy: ReadonlySet<bigint> = new Set(),
): Promise<SweptAccountRow[]> {
  const { flag, dueAtMs } = RECORDED[kind];
  const past = pastCursorSql(dueAtMs, (ms) => ms, accounts.id, after);
  const rows = await db
    .select({ id: accounts.id, projectId: accounts.projectId, customerPk: accounts.customerPk, dueAtMs })
    .from(accounts)
    .where(and(eq(flag, false), lte(dueAtMs, nowMs), past, notOfCustomersSql(accounts.customerPk, busy)))
    .orderBy(asc(dueAtMs), asc(accounts.id))
    .limit(limit);
  return rows.map(({ dueAtMs: atMs, ...account }) => ({ ...account, after: { atMs, pk: account.id } }));
}

/**
 * Marks these accounts' expiry (or start) recorded, guarded: the caller holds their locks, so
 * every one of them changes or the batch fails before its COMMIT. One UPDATE for a whole list.
 */
export const markRecordedSql = (kind: AccountRecordKind, ids: readonly bigint[]): SQL[] =>
  chunksOf(ids).flatMap((chunk) => {
    const flag = kind === "expiry" ? sql`expiry_recorded` : sql`start_recorded`;
    const list = sql.join(
      chunk.map((id) => sql`${id}`),
      sql`, `,
    );
    return guardedUpdateSql(sql`UPDATE ${accounts} SET ${flag} = TRUE WHERE id IN (${list}) AND ${flag} = FALSE`, chunk.length);
  });

/**
 * Locks customers (the serialization point of every write on a customer) in ascending primary
 * key, the one order every transaction takes them in, with their ledger position (the balance
 * over every account whose expiry is not recorded) and alerts flag. `pks` are scalar subqueries
 * (a customer by its id, a hold's owner), constants to the optimizer. One row per existing
 * customer. The balance a write answers from is that position less inactiveBalancesSql's.
 */
export function lockCustomersSql(pks: readonly SQL[]): SQL {
  return sql`SELECT c.id AS c_pk, c.project_id AS c_project_id, c.customer_id AS c_customer_id, ${CUSTOMER_LOCKED_COLUMNS}
    FROM ${customers} c
    WHERE c.id IN (${sql.join([...pks], sql`, `)})
    ORDER BY c.id
    FOR UPDATE`;
}

/**
 * Per customer of `pks` (scalar subqueries; `projectIds`: theirs), the sum over its accounts that
 * are in its ledger position but not ACTIVE: expiry not recorded, and expired by now or not
 * started yet. Its ACTIVE balance is its position less these, so a write reads only the few
 * accounts in between states, never every ACTIVE one (a customer of 5,000 ACTIVE accounts read
 * them all at each write). Each part by an index that starts at the customer
 * (`accounts_spending_order_idx`, `accounts_pending_idx`). Not a locking read: run after the
 * customers' lock, and every writer of an account holds its customer's, so under READ COMMITTED
 * it sees what they committed. One row per customer that has such accounts.
 */
export function inactiveBalancesSql(projectIds: readonly bigint[], pks: readonly SQL[], nowMs: number): SQL {
  const projects = sql.join(
    [...new Set(projectIds)].map((id) => sql`${id}`),
    sql`, `,
  );
  const customersOf = sql`a.project_id IN (${projects}) AND a.customer_pk IN (${sql.join([...pks], sql`, `)})`;
  return sql`SELECT i.customer_pk, SUM(i.total) AS total, SUM(i.used) AS used, SUM(i.frozen) AS frozen
    FROM (
      SELECT a.customer_pk, a.total, a.used, a.frozen FROM ${accounts} a FORCE INDEX (accounts_spending_order_idx)
        WHERE ${customersOf} AND a.expiry_recorded = FALSE AND a.expires_at_ms <= ${nowMs}
      UNION ALL
      SELECT a.customer_pk, a.total, a.used, a.frozen FROM ${accounts} a FORCE INDEX (accounts_pending_idx)
        WHERE ${customersOf} AND a.starts_at_ms > ${nowMs} AND a.expiry_recorded = FALSE AND a.expires_at_ms > ${nowMs}
    ) i
    GROUP BY i.customer_pk`;
}

/**
 * What a write reads of a customer it locks (as `c`): its ledger position (its last entry's
 * sequence and balance_after) and whether it has balance alerts.
 */
export const CUSTOMER_LOCKED_COLUMNS = sql`c.ledger_sequence AS c_ledger_sequence, c.ledger_total AS c_ledger_total,
  c.ledger_used AS c_ledger_used, c.ledger_frozen AS c_ledger_frozen, c.has_alerts AS c_has_alerts`;

export const ledgerPositionFromRow = (row: Row): LedgerPosition => ({
  sequence: bigOf(row.c_ledger_sequence),
  total: bigOf(row.c_ledger_total),
  used: bigOf(row.c_ledger_used),
  frozen: bigOf(row.c_ledger_frozen),
});

/** A customer row of lockCustomersSql, with its ACTIVE balance. */
export interface LockedCustomerRow {
  readonly pk: bigint;
  readonly projectId: bigint;
  readonly customerId: string;
  readonly before: Balance;
  readonly ledger: LedgerPosition;
  readonly hasAlerts: boolean;
}

/** A customer row of lockCustomersSql, and its row of inactiveBalancesSql (none: it has no such accounts). */
export function lockedCustomerFromRow(row: Row, inactive: Row | undefined): LockedCustomerRow {
  const ledger = ledgerPositionFromRow(row);
  const aside = inactive ? balanceFromRow(inactive) : NO_BALANCE;
  const total = ledger.total - aside.total;
  const used = ledger.used - aside.used;
  const frozen = ledger.frozen - aside.frozen;
  return {
    pk: bigOf(row.c_pk),
    projectId: bigOf(row.c_project_id),
    customerId: stringOf(row.c_customer_id),
    before: { total, used, frozen, available: total - used - frozen },
    ledger,
    hasAlerts: boolOf(row.c_has_alerts),
  };
}

/** Every spendable account (ACTIVE, something available) of these customers, all types, locked, by customer then id. */
export function lockAllSpendableSql(customers: ReadonlyArray<{ readonly projectId: bigint; readonly pk: bigint }>, nowMs: number): SQL {
  return sql`SELECT a.customer_pk AS a_customer_pk, ${ACCOUNT_COLUMNS}
    FROM ${accounts} a FORCE INDEX (accounts_spending_order_idx)
    WHERE (${sql.join(
      customers.map((c) => sql`(a.project_id = ${c.projectId} AND a.customer_pk = ${c.pk})`),
      sql` OR `,
    )}) AND ${activeAccountLockingSql(nowMs)} AND a.total - a.used - a.frozen > 0
    ORDER BY a.customer_pk, a.id
    FOR UPDATE`;
}
