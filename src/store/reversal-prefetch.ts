import { type SQL, sql } from "./sql.js";
import type { HoldRef } from "../domain/customer-ref.js";
import type { ChargedPart } from "../domain/plans/refund-plan.js";
import { type ChargeState, chargeKey, type DepositState, depositKey, type ReversalState } from "../domain/plans/reversal-state.js";
import type { VoidRequest } from "../domain/plans/void-plan.js";
import type { CreditWrite } from "../domain/plans/write-list.js";
import { ACCOUNT_COLUMNS } from "./accounts-store.js";
import { customerPkSql } from "./customers-store.js";
import { bigOf, stringOf } from "./row-values.js";
import { type Row, rowsOf, type StatementResult } from "./run-transaction.js";
import { accounts, customers, ledgerEntries } from "./schema.js";
import { lockHoldsSql, transactionCustomerPkSql, transactionFromRow, transactionPkSql } from "./transactions-store.js";
import { appendTo } from "../domain/collections.js";

// The prefetch of a list's refunds and voids (a part of list-prefetch.ts): run after every customer
// of the list is locked. A refund reads its charge (locked), what the charge took from each account
// and what earlier refunds gave back to it (its entries, by ledger_transaction_idx), and locks those
// accounts. A void reads the customer's DEPOSIT entry with what earlier voids removed of it, and
// locks its account. The accounts join their customers' accounts in the list state.

function uniqueBy<T>(items: readonly T[], key: (item: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const item of items) if (!seen.has(key(item))) seen.set(key(item), item);
  return [...seen.values()];
}

const chargesOf = (writes: readonly CreditWrite[]): HoldRef[] =>
  uniqueBy(
    writes.flatMap((w) => (w.kind === "refund" ? [{ projectId: w.request.projectId, transactionId: w.request.transactionId }] : [])),
    chargeKey,
  );

const depositsOf = (writes: readonly CreditWrite[]): VoidRequest[] =>
  uniqueBy(
    writes.flatMap((w) => (w.kind === "void" ? [w.request] : [])),
    depositKey,
  );

/** The customers a list's refunds need locked beside those they name: each charge's own (a named one may be another). */
export const reversalCustomerPksSql = (writes: readonly CreditWrite[]): SQL[] =>
  chargesOf(writes).map((c) => transactionCustomerPkSql(c.projectId, c.transactionId));

/** The statements, by name, for namedBatch (empty lists when the list has no reversal). */
export function reversalStatements(writes: readonly CreditWrite[]) {
  const charges = chargesOf(writes);
  const deposits = depositsOf(writes);
  return {
    charges: charges.length === 0 ? [] : [lockHoldsSql(charges)],
    chargeParts: charges.length === 0 ? [] : [chargedPartsSql(charges)],
    chargeAccounts: charges.length === 0 ? [] : [lockChargeAccountsSql(charges)],
    deposits: deposits.length === 0 ? [] : [depositRecordsSql(deposits)],
    depositAccountsLocked: deposits.length === 0 ? [] : [lockDepositAccountsSql(deposits)],
  };
}

const chargePks = (charges: readonly HoldRef[]): SQL =>
  sql.join(
    charges.map((c) => transactionPkSql(c.projectId, c.transactionId)),
    sql`, `,
  );

/**
 * Per charge and account: what the charge took (DEDUCT, CONSUME with overage) and what its
 * refunds gave back. A plain read: under the customer's lock no other write appends to the charge.
 */
const chargedPartsSql = (charges: readonly HoldRef[]): SQL =>
  sql`SELECT l.transaction_pk AS p_transaction_pk, l.account_id AS p_account_id,
      SUM(CASE WHEN l.operation IN ('DEDUCT', 'CONSUME') THEN l.amount ELSE 0 END) AS p_charged,
      SUM(CASE WHEN l.operation = 'REFUND' THEN l.amount ELSE 0 END) AS p_refunded
    FROM ${ledgerEntries} l FORCE INDEX (ledger_transaction_idx)
    WHERE l.transaction_pk IN (${chargePks(charges)})
    GROUP BY l.transaction_pk, l.account_id
    HAVING p_charged > 0 OR p_refunded > 0`;

/**
 * The accounts the charges took from, locked, driven from the charges' entries (a derived table,
 * which FOR UPDATE does not lock), then accounts by primary key.
 */
const lockChargeAccountsSql = (charges: readonly HoldRef[]): SQL =>
  sql`SELECT a.customer_pk AS a_customer_pk, ${ACCOUNT_COLUMNS}
    FROM (SELECT DISTINCT l.account_id FROM ${ledgerEntries} l FORCE INDEX (ledger_transaction_idx)
      WHERE l.transaction_pk IN (${chargePks(charges)}) AND l.operation IN ('DEDUCT', 'CONSUME')) p
    STRAIGHT_JOIN ${accounts} a FORCE INDEX (PRIMARY) ON a.id = p.account_id
    ORDER BY a.id
    FOR UPDATE`;

/** The condition naming a void's DEPOSIT entry: its id, in the caller's project, of the named customer. */
const depositNamedSql = (d: VoidRequest, alias: SQL): SQL =>
  sql`(${alias}.id = ${d.recordId} AND ${alias}.project_id = ${d.projectId} AND ${alias}.operation = 'DEPOSIT'
    AND ${alias}.customer_pk = ${customerPkSql(d.projectId, d.customerId)})`;

/**
 * The DEPOSIT entries, each with what earlier voids removed of it (VOID entries come after it in
 * the customer's ledger, so the range read starts at the deposit).
 */
const depositRecordsSql = (deposits: readonly VoidRequest[]): SQL =>
  sql`SELECT l.id AS d_id, l.project_id AS d_project_id, l.account_id AS d_account_id, l.amount AS d_amount,
      c.customer_id AS d_customer_id,
      (SELECT COALESCE(SUM(v.amount), 0) FROM ${ledgerEntries} v
        WHERE v.project_id = l.project_id AND v.customer_pk = l.customer_pk AND v.id > l.id
          AND v.operation = 'VOID' AND v.reverses_record_id = l.id) AS d_voided
    FROM ${ledgerEntries} l JOIN ${customers} c ON c.id = l.customer_pk
    WHERE ${sql.join(
      deposits.map((d) => depositNamedSql(d, sql`l`)),
      sql` OR `,
    )}`;

/** The deposits' accounts, locked by primary key (each a scalar subquery: a constant to the optimizer). */
const lockDepositAccountsSql = (deposits: readonly VoidRequest[]): SQL =>
  sql`SELECT a.customer_pk AS a_customer_pk, ${ACCOUNT_COLUMNS}
    FROM ${accounts} a
    WHERE a.id IN (${sql.join(
      deposits.map((d) => sql`(SELECT r.account_id FROM ${ledgerEntries} r WHERE ${depositNamedSql(d, sql`r`)})`),
      sql`, `,
    )})
    ORDER BY a.id
    FOR UPDATE`;

type Results = Record<keyof ReturnType<typeof reversalStatements>, StatementResult[]>;

/**
 * The reversal state from the statements' results; the accounts read go to their customers
 * (`addAccounts`, by customer pk).
 */
export function reversalsFromRows(
  writes: readonly CreditWrite[],
  r: Results,
  addAccounts: (customerPk: bigint, rows: readonly Row[]) => void,
): ReversalState | undefined {
  const charges = chargesOf(writes);
  const deposits = depositsOf(writes);
  if (charges.length === 0 && deposits.length === 0) return undefined;
  for (const rows of [rowsOf(r.chargeAccounts[0] ?? []), rowsOf(r.depositAccountsLocked[0] ?? [])]) {
    for (const [pk, own] of groupBy(rows, (row) => bigOf(row.a_customer_pk))) addAccounts(pk, own);
  }
  return {
    charges: chargesFromRows(charges, rowsOf(r.charges[0] ?? []), rowsOf(r.chargeParts[0] ?? [])),
    deposits: depositsFromRows(deposits, rowsOf(r.deposits[0] ?? [])),
  };
}

function groupBy<K, T>(items: readonly T[], key: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) appendTo(groups, key(item), item);
  return groups;
}

function chargesFromRows(charges: readonly HoldRef[], chargeRows: readonly Row[], partRows: readonly Row[]): Map<string, ChargeState> {
  const parts = groupBy(partRows, (row) => bigOf(row.p_transaction_pk));
  const found = new Map<string, ChargeState>();
  for (const row of chargeRows) {
    const charge = transactionFromRow(row);
    if (!charge) continue;
    const own: ChargedPart[] = (parts.get(charge.pk) ?? []).map((p) => ({
      accountId: bigOf(p.p_account_id),
      charged: bigOf(p.p_charged),
      refunded: bigOf(p.p_refunded),
    }));
    found.set(chargeKey({ projectId: bigOf(row.project_id), transactionId: charge.transactionId }), { charge, parts: own });
  }
  for (const c of charges) if (!found.has(chargeKey(c))) found.set(chargeKey(c), { charge: null, parts: [] });
  return found;
}

function depositsFromRows(deposits: readonly VoidRequest[], rows: readonly Row[]): Map<string, DepositState> {
  const found = new Map<string, DepositState>();
  for (const row of rows) {
    const key = depositKey({ projectId: bigOf(row.d_project_id), recordId: bigOf(row.d_id), customerId: stringOf(row.d_customer_id) });
    found.set(key, {
      record: { id: bigOf(row.d_id), accountId: bigOf(row.d_account_id), amount: bigOf(row.d_amount) },
      voided: bigOf(row.d_voided),
    });
  }
  for (const d of deposits) if (!found.has(depositKey(d))) found.set(depositKey(d), { record: null, voided: 0n });
  return found;
}
