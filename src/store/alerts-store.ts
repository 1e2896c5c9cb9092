import type { ConnectionSource } from "./cluster-pool.js";
import { type SQL, sql } from "./sql.js";
import type { RowDataPacket } from "mysql2/promise";
import { customerKey } from "../domain/customer-ref.js";
import { ALERT_STATES, type AlertState, type AvailableBalances, type BalanceAlert } from "../domain/balance-alerts.js";
import { activeAccountSql } from "./accounts-store.js";
import { customersNamedSql } from "./customers-store.js";
import { bigOf, closedValueOf, msOf, stringOf } from "./row-values.js";
import { type Batch, headerOf, mapBatch, namedBatch, type Row, rowsOf } from "./run-transaction.js";
import { accounts, balanceAlerts, customers } from "./schema.js";
import { appendTo } from "../domain/collections.js";

/** Balance alerts: their rows, the pipeline's prefetch of a customer's alerts, and their CRUD. */

const ALERT_COLUMNS = sql.raw("id, project_id, customer_id, credit_type, threshold, state, created_at, updated_at");

/** A row read back as untrusted. */
function alertOf(row: Row | RowDataPacket): BalanceAlert {
  const creditType = stringOf(row.credit_type);
  return {
    alertId: bigOf(row.id),
    projectId: bigOf(row.project_id),
    customerId: stringOf(row.customer_id),
    creditType: creditType === "" ? null : creditType,
    threshold: bigOf(row.threshold),
    state: closedValueOf(row.state, ALERT_STATES, "balance_alerts.state"),
    createdAtMs: msOf(row.created_at),
    updatedAtMs: msOf(row.updated_at),
  };
}

const byAlertId = (a: BalanceAlert, b: BalanceAlert) => (a.alertId < b.alertId ? -1 : a.alertId > b.alertId ? 1 : 0);

/** The states a write leaves its customer's alerts in (one UPDATE; none for no change). */
export function updateAlertStatesSql(states: ReadonlyMap<bigint, AlertState>, nowMs: number): SQL[] {
  if (states.size === 0) return [];
  const ids = [...states.keys()];
  const cases = sql.join(
    ids.map((id) => sql`WHEN ${id} THEN ${states.get(id)}`),
    sql` `,
  );
  return [
    sql`UPDATE ${balanceAlerts} SET state = CASE id ${cases} END, updated_at = ${new Date(nowMs)}
      WHERE id IN (${sql.join(
        ids.map((id) => sql`${id}`),
        sql`, `,
      )})`,
  ];
}

/**
 * The available balance per credit type over a customer's ACTIVE accounts; with
 * `startsUnrecorded`, over those of them whose start the sweeper has not recorded yet (the
 * credits the alerts have not seen start). No locks: read under the customer's.
 */
export const availableByCreditTypeSql = (
  projectId: bigint,
  customerPk: SQL,
  nowMs: number,
  options: { startsUnrecorded?: boolean } = {},
): SQL => availableSql(sql`a.project_id = ${projectId} AND a.customer_pk = ${customerPk}`, sql``, nowMs, options);

/**
 * availableByCreditTypeSql for many customers at once (`customersScope`: accountsOfCustomersSql),
 * each row with its `customer_pk`: no row for a customer or credit type with no such account.
 */
export const availableByCustomerAndCreditTypeSql = (
  customersScope: SQL,
  nowMs: number,
  options: { startsUnrecorded?: boolean } = {},
): SQL => availableSql(customersScope, sql`a.customer_pk, `, nowMs, options);

const availableSql = (scope: SQL, grouping: SQL, nowMs: number, options: { startsUnrecorded?: boolean }): SQL =>
  sql`SELECT ${grouping}a.credit_type, COALESCE(SUM(a.total - a.used - a.frozen), 0) AS available FROM ${accounts} a
    WHERE ${scope} AND ${activeAccountSql(nowMs)}${options.startsUnrecorded ? sql` AND a.start_recorded = FALSE` : sql``}
    GROUP BY ${grouping}a.credit_type`;

/** The rows of availableByCreditTypeSql as the balances alerts watch. */
export function availableBalancesFromRows(rows: readonly Row[]): AvailableBalances {
  const byCreditType = new Map(rows.map((r) => [stringOf(r.credit_type), bigOf(r.available)] as const));
  return { all: [...byCreditType.values()].reduce((a, b) => a + b, 0n), byCreditType };
}

/**
 * Locks the customer row and reads its available balance per credit type (ACTIVE accounts), in
 * one round trip; null when the customer does not exist.
 */
export const lockCustomerAvailable = (
  projectId: bigint,
  customerId: string,
  nowMs: number,
): Batch<{ customerPk: bigint; available: AvailableBalances; alertCreditTypes: ReadonlySet<string> } | null> =>
  mapBatch(
    namedBatch({
      customer: [sql`SELECT id FROM ${customers} WHERE project_id = ${projectId} AND customer_id = ${customerId} FOR UPDATE`],
      balances: [
        availableByCreditTypeSql(
          projectId,
          sql`(SELECT id FROM ${customers} WHERE project_id = ${projectId} AND customer_id = ${customerId})`,
          nowMs,
        ),
      ],
      alerts: [sql`SELECT credit_type FROM ${balanceAlerts} WHERE project_id = ${projectId} AND customer_id = ${customerId}`],
    }),
    (r) => {
      const row = rowsOf(r.customer[0])[0];
      if (!row) return null;
      const alertCreditTypes = new Set(rowsOf(r.alerts[0]).map((alert) => stringOf(alert.credit_type)));
      return { customerPk: bigOf(row.id), available: availableBalancesFromRows(rowsOf(r.balances[0])), alertCreditTypes };
    },
  );

export interface AlertToSet {
  readonly projectId: bigint;
  readonly customerId: string;
  /** The customer's row, locked by the caller (lockCustomerAvailable): its has_alerts is set. */
  readonly customerPk: bigint;
  readonly creditType: string | null;
  readonly threshold: bigint;
  readonly state: AlertState;
  readonly nowMs: number;
}

/** Creates or replaces an alert, flags its customer as having alerts, reads it back; `created` is false when it replaced one. */
export const upsertAlert = (alert: AlertToSet): Batch<{ alert: BalanceAlert; created: boolean }> => {
  const creditType = alert.creditType ?? "";
  const now = new Date(alert.nowMs);
  const target = sql`project_id = ${alert.projectId} AND customer_id = ${alert.customerId} AND credit_type = ${creditType}`;
  const batch = namedBatch({
    // Under the customer's lock, so no other set of this alert runs between this read and the upsert.
    existing: [sql`SELECT id FROM ${balanceAlerts} WHERE ${target}`],
    upsert: [
      sql`INSERT INTO ${balanceAlerts} (project_id, customer_id, credit_type, threshold, state, created_at, updated_at)
        VALUES (${alert.projectId}, ${alert.customerId}, ${creditType}, ${alert.threshold}, ${alert.state}, ${now}, ${now})
        ON DUPLICATE KEY UPDATE threshold = ${alert.threshold}, state = ${alert.state}, updated_at = ${now}`,
    ],
    flag: [sql`UPDATE ${customers} SET has_alerts = TRUE WHERE id = ${alert.customerPk}`],
    readBack: [sql`SELECT ${ALERT_COLUMNS} FROM ${balanceAlerts} WHERE ${target}`],
  });
  return mapBatch(batch, (r) => {
    const row = rowsOf(r.readBack[0])[0];
    if (!row) throw new Error("an alert just written was not read back");
    // Not the upsert's affected rows: one that changed nothing (two sets in one millisecond)
    // counts 1, as an insert does (mysql2 sets CLIENT_FOUND_ROWS).
    return { alert: alertOf(row), created: rowsOf(r.existing[0]).length === 0 };
  });
};

/** Where a page of alerts goes on from: past this customer's alert of this credit type ('' = every credit type). */
export interface AlertPosition {
  readonly customerId: string;
  readonly creditType: string;
}

/**
 * Up to `limit` alerts of the project (or of one customer), by customer then credit type, past
 * `after` (the columns' binary collation orders them as the keyset compares them).
 */
export async function listAlerts(
  pool: ConnectionSource,
  projectId: bigint,
  customerId: string | null,
  after: AlertPosition | null,
  limit: number,
): Promise<BalanceAlert[]> {
  const where = ["project_id = ?"];
  const values: string[] = [projectId.toString()];
  if (customerId !== null) {
    where.push("customer_id = ?");
    values.push(customerId);
  }
  if (after !== null) {
    where.push("(customer_id > ? OR (customer_id = ? AND credit_type > ?))");
    values.push(after.customerId, after.customerId, after.creditType);
  }
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT id, project_id, customer_id, credit_type, threshold, state, created_at, updated_at FROM balance_alerts
      WHERE ${where.join(" AND ")} ORDER BY customer_id, credit_type LIMIT ?`,
    [...values, Math.trunc(limit)],
  );
  return rows.map(alertOf);
}

/**
 * Deletes one alert under its customer's lock (the lock every write takes first) and clears the
 * customer's has_alerts when it was its last; true when there was one.
 */
export const removeAlert = (projectId: bigint, customerId: string, creditType: string | null): Batch<boolean> => {
  const named = sql`project_id = ${projectId} AND customer_id = ${customerId}`;
  const batch = namedBatch({
    lock: [sql`SELECT id FROM ${customers} WHERE ${named} FOR UPDATE`],
    deleted: [sql`DELETE FROM ${balanceAlerts} WHERE ${named} AND credit_type = ${creditType ?? ""}`],
    flag: [
      sql`UPDATE ${customers} c SET c.has_alerts = EXISTS (
          SELECT 1 FROM ${balanceAlerts} b WHERE b.project_id = c.project_id AND b.customer_id = c.customer_id)
        WHERE c.project_id = ${projectId} AND c.customer_id = ${customerId}`,
    ],
  });
  return mapBatch(batch, (r) => headerOf(r.deleted[0]).affectedRows === 1);
};

/** The alerts of a list's customers, locked (their customers are locked first), and their balances. */
export interface ListAlerts {
  /** By customerKey. */
  readonly alerts: ReadonlyMap<string, BalanceAlert[]>;
  /** By customerKey, only for customers with alerts: available per credit type over ACTIVE accounts. */
  readonly available: ReadonlyMap<string, AvailableBalances>;
}

/**
 * For a list's prefetch, after its customers' lock: their alerts (two statements for the whole
 * list; the balances per credit type only of customers that have alerts).
 */
export function prefetchListAlertsSql(
  refs: ReadonlyArray<{ projectId: bigint; customerId: string }>,
  nowMs: number,
): { alerts: SQL[]; alertBalances: SQL[] } {
  if (refs.length === 0) return { alerts: [], alertBalances: [] };
  return {
    // No ORDER BY: sorted by id in code, so the read goes by the (project, customer, credit type)
    // key and locks only these customers' alerts (ordering by id scanned, and locked, them all).
    alerts: [sql`SELECT ${ALERT_COLUMNS} FROM ${balanceAlerts} b WHERE ${customersNamedSql(refs, sql`b`)} FOR UPDATE`],
    alertBalances: [
      sql`SELECT c.project_id AS c_project_id, c.customer_id AS c_customer_id, a.credit_type,
        COALESCE(SUM(a.total - a.used - a.frozen), 0) AS available
      FROM ${customers} c JOIN ${accounts} a ON a.project_id = c.project_id AND a.customer_pk = c.id AND ${activeAccountSql(nowMs)}
      WHERE (${customersNamedSql(refs, sql`c`)})
        AND EXISTS (SELECT 1 FROM ${balanceAlerts} b WHERE b.project_id = c.project_id AND b.customer_id = c.customer_id)
      GROUP BY c.id, a.credit_type`,
    ],
  };
}

export function listAlertsFromRows(alertRows: readonly Row[], availableRows: readonly Row[]): ListAlerts {
  const alerts = new Map<string, BalanceAlert[]>();
  for (const alert of alertRows.map(alertOf).sort(byAlertId)) {
    const key = customerKey(alert);
    appendTo(alerts, key, alert);
  }
  const rowsByCustomer = new Map<string, Row[]>();
  for (const row of availableRows) {
    const key = customerKey({ projectId: bigOf(row.c_project_id), customerId: stringOf(row.c_customer_id) });
    appendTo(rowsByCustomer, key, row);
  }
  const available = new Map<string, AvailableBalances>();
  for (const key of alerts.keys()) available.set(key, availableBalancesFromRows(rowsByCustomer.get(key) ?? []));
  return { alerts, available };
}

/** Customers with balance alerts whose has_alerts is off: the sweeper's repair and `verify` read them. */
export const UNFLAGGED_ALERT_CUSTOMERS = `FROM balance_alerts a
  JOIN customers c ON c.project_id = a.project_id AND c.customer_id = a.customer_id
  WHERE c.has_alerts = FALSE`;

/**
 * Customers that have balance alerts but whose has_alerts is off, at most `limit`, by a plain read:
 * a build before migration 0015 sets alerts without the flag (during a rolling upgrade), and
 * writes read a customer's alerts only when it is on.
 */
export async function customersMissingAlertFlag(pool: ConnectionSource, limit: number): Promise<bigint[]> {
  const [rows] = await pool.query<RowDataPacket[]>(`SELECT DISTINCT c.id ${UNFLAGGED_ALERT_CUSTOMERS} LIMIT ?`, [Math.trunc(limit)]);
  return rows.map((row) => bigOf(row.id));
}

/** Turns has_alerts on for these customers (their rows only: the first lock of any write). */
export async function flagCustomersWithAlerts(pool: ConnectionSource, pks: readonly bigint[]): Promise<void> {
  if (pks.length === 0) return;
  await pool.query(`UPDATE customers SET has_alerts = TRUE WHERE id IN (${pks.map(() => "?").join(", ")}) AND has_alerts = FALSE`, [
    ...pks.map((pk) => pk.toString()),
  ]);
}
