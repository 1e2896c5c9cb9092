import { and, sql as drizzleSql, asc, eq, lte } from "drizzle-orm";
import { type DueCursor, notOfCustomersSql, pastCursorSql } from "./due-order.js";
import { type SQL, sql } from "./sql.js";
import type { Hold } from "../domain/hold.js";
import type { Charge } from "../domain/plans/refund-plan.js";
import {
  AUTO_ACTIONS,
  TRANSACTION_KINDS,
  TRANSACTION_STATUSES,
  type AllocationLine,
  type AutoAction,
  type Metadata,
  type TransactionKind,
  type TransactionStatus,
} from "../domain/types.js";
import type { Database, Db } from "./database.js";
import { decodeMetadata, encodeJson } from "./json-codec.js";
import { ACCOUNT_COLUMNS } from "./accounts-store.js";
import { bigOf, boolOf, businessTypeOf, creditTypesOf, msOf, oneOf, stringOf } from "./row-values.js";
import { type Row, rowsOf, runTransaction } from "./run-transaction.js";
import { accounts, allocations, apiKeys, customers, transactions } from "./schema.js";
import { guardedUpdateSql } from "./row-count-guard.js";
import { byProject, keyListsSql } from "./key-lists.js";
import { rowsPart, type Settlement, type WritePart } from "./write-set.js";

/** A row of `transactions`, read by transactionFromRow: a hold to settle or a charge to refund. */
export interface TransactionRow extends Hold, Charge {
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
  readonly autoAction: AutoAction | null;
  readonly autoAtMs: number | null;
  readonly createdAtMs: number;
  readonly settledAtMs: number | null;
}

/**
 * Reads a transaction with its customer's public id, the prefix of the key that made it and the
 * request id of the call that made it (null before migration 0013).
 */
export async function findTransaction(
  db: Db,
  projectId: bigint,
  transactionId: string,
): Promise<(TransactionRow & { apiKeyPrefix: string | null; requestId: string | null }) | null> {
  const [rows] = (await db.execute(findTransactionSql(projectId, transactionId, { withKeyPrefix: true }))) as unknown as [Row[]];
  const row = rows[0];
  const found = transactionFromRow(row);
  if (!found || !row) return null;
  const optionalText = (v: unknown) => (v == null ? null : stringOf(v));
  return { ...found, apiKeyPrefix: optionalText(row.k_prefix), requestId: optionalText(row.request_id) };
}

/**
 * A transaction with its customer's public id (transactionFromRow, the one mapper of the table);
 * `lock` takes the row for settlement, `ofCustomer` only if it is that customer's, `withKeyPrefix`
 * adds the prefix of the key that made it.
 */
export function findTransactionSql(
  projectId: bigint,
  transactionId: string,
  options: { lock?: boolean; skipLocked?: boolean; ofCustomer?: SQL; withKeyPrefix?: boolean } = {},
): SQL {
  const lock = options.lock ? sql` FOR UPDATE${options.skipLocked ? sql` SKIP LOCKED` : sql``}` : sql``;
  const owner = options.ofCustomer ? sql` AND t.customer_pk = ${options.ofCustomer}` : sql``;
  const key = options.withKeyPrefix ? sql` LEFT JOIN ${apiKeys} k ON k.id = t.api_key_id` : sql``;
  return sql`SELECT t.*, c.customer_id AS c_customer_id${options.withKeyPrefix ? sql`, k.prefix AS k_prefix` : sql``}
    FROM ${transactions} t JOIN ${customers} c ON c.id = t.customer_pk${key}
    WHERE t.project_id = ${projectId} AND t.transaction_id = ${transactionId}${owner}${lock}`;
}

export function transactionFromRow(row: Row | undefined): TransactionRow | null {
  if (!row) return null;
  const optionalMs = (v: unknown) => (v === null || v === undefined ? null : msOf(v));
  return {
    pk: bigOf(row.id),
    transactionId: stringOf(row.transaction_id),
    customerPk: bigOf(row.customer_pk),
    customerId: stringOf(row.c_customer_id),
    kind: oneOf(row.kind, TRANSACTION_KINDS, "kind"),
    status: oneOf(row.status, TRANSACTION_STATUSES, "status"),
    amount: bigOf(row.amount),
    consumedAmount: bigOf(row.consumed_amount),
    returnedAmount: bigOf(row.returned_amount),
    overageAmount: bigOf(row.overage_amount),
    creditTypes: creditTypesOf(row.credit_types),
    businessType: businessTypeOf(row.business_type),
    description: stringOf(row.description),
    metadata: decodeMetadata(stringOf(row.metadata)),
    autoAction: row.auto_action == null ? null : oneOf(row.auto_action, AUTO_ACTIONS, "auto_action"),
    autoAtMs: optionalMs(row.auto_at),
    settledAutomatically: boolOf(row.settled_automatically),
    createdAtMs: msOf(row.created_at),
    settledAtMs: optionalMs(row.settled_at),
    refundedAmount: bigOf(row.refunded_amount),
  };
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
  readonly autoAction: AutoAction | null;
  readonly autoAtMs: number | null;
  /** The key that made it (audit). */
  readonly apiKeyId: bigint | null;
  /** The x-request-id of the call that made it. */
  readonly requestId?: string | undefined;
  readonly nowMs: number;
}

const TRANSACTIONS_HEAD = sql`INSERT INTO ${transactions} (project_id, transaction_id, customer_pk, kind, status, amount, credit_types,
      business_type, description, metadata, auto_action, auto_at, created_at, api_key_id, request_id)`;

/** The new transaction's row; later rows of the same write name it by transactionPkSql. */
export function newTransactionPart(projectId: bigint, t: NewTransaction): WritePart {
  return rowsPart("transactions", TRANSACTIONS_HEAD, [
    sql`(${projectId}, ${t.transactionId}, ${t.customerPk}, ${t.kind}, ${t.status}, ${t.amount}, ${encodeJson(t.creditTypes)},
      ${t.businessType}, ${t.description}, ${encodeJson(t.metadata)}, ${t.autoAction},
      ${t.autoAtMs === null ? null : new Date(t.autoAtMs)}, ${new Date(t.nowMs)}, ${t.apiKeyId}, ${t.requestId ?? null})`,
  ]);
}

/**
 * A transaction's pk by its public id, for rows inserted after it in the same batch: unlike
 * LAST_INSERT_ID(), it still names the right row when several writes' transactions go in one INSERT.
 */
export const transactionPkSql = (projectId: bigint, transactionId: string): SQL =>
  sql`(SELECT id FROM ${transactions} WHERE project_id = ${projectId} AND transaction_id = ${transactionId})`;

export type { Settlement };

export interface AllocationRow {
  readonly accountId: bigint;
  readonly amount: bigint;
}

/** Records the allocation of the transaction whose pk is `transactionPk` (a value or `@tx`), in chunks. */
const ALLOCATIONS_HEAD = sql`INSERT INTO ${allocations} (project_id, transaction_pk, seq, account_id, amount)`;

export function allocationsPart(projectId: bigint, transactionPk: SQL, lines: readonly AllocationRow[]): WritePart {
  return rowsPart(
    "allocations",
    ALLOCATIONS_HEAD,
    lines.map((l, seq) => sql`(${projectId}, ${transactionPk}, ${seq}, ${l.accountId}, ${l.amount})`),
  );
}

const allocationOf = (projectId: bigint, transactionId: string, ofCustomer?: SQL): SQL =>
  sql`al.transaction_pk = (SELECT id FROM ${transactions} WHERE project_id = ${projectId} AND transaction_id = ${transactionId}${
    ofCustomer ? sql` AND customer_pk = ${ofCustomer}` : sql``
  })`;

/**
 * A transaction's allocation in order, each part with its account locked: driven from the
 * allocation's own index, then accounts by primary key (an `a.id IN (subquery)` on accounts let
 * MariaDB scan every allocation). A part whose account is gone has NULL account columns; with
 * `skipLocked`, so does a part whose account another transaction holds (compare with
 * countAllocationAccountsSql to tell them apart).
 */
export const lockAllocationAccountsSql = (
  projectId: bigint,
  transactionId: string,
  options: { skipLocked?: boolean; ofCustomer?: SQL } = {},
): SQL =>
  sql`SELECT al.account_id AS al_account_id, al.amount AS al_amount, ${ACCOUNT_COLUMNS}
    FROM ${allocations} al LEFT JOIN ${accounts} a FORCE INDEX (PRIMARY) ON a.id = al.account_id
    WHERE ${allocationOf(projectId, transactionId, options.ofCustomer)}
    ORDER BY al.seq
    FOR UPDATE${options.skipLocked ? sql` SKIP LOCKED` : sql``}`;

/**
 * Holds to settle (or charges to refund), each with its customer's public id, locked (the caller
 * has locked their customers first); rows for transactionFromRow.
 */
export const lockHoldsSql = (holds: ReadonlyArray<{ readonly projectId: bigint; readonly transactionId: string }>): SQL =>
  sql`SELECT t.*, c.customer_id AS c_customer_id
    FROM ${transactions} t STRAIGHT_JOIN ${customers} c FORCE INDEX (PRIMARY) ON c.id = t.customer_pk
    WHERE ${transactionsNamedSql(holds)}
    FOR UPDATE`;

/**
 * Holds to settle, locked with their allocations in order and each part's account, in one
 * statement: a row per part (`al_transaction_pk`, `al_account_id`, `al_amount` and the account's
 * columns beside the hold's), for transactionFromRow and allocationFromRow. The holds are read by
 * their unique key and drive the join (STRAIGHT_JOIN), and the allocation is read by its index even
 * when statistics say a scan is cheaper (a small or new table): under FOR UPDATE a scan would lock
 * every allocation it reads. The caller has locked the holds' customers first.
 */
export const lockHoldsWithAllocationsSql = (holds: ReadonlyArray<{ readonly projectId: bigint; readonly transactionId: string }>): SQL =>
  sql`SELECT t.*, c.customer_id AS c_customer_id,
      al.transaction_pk AS al_transaction_pk, al.account_id AS al_account_id, al.amount AS al_amount, ${ACCOUNT_COLUMNS}
    FROM ${transactions} t STRAIGHT_JOIN ${customers} c FORCE INDEX (PRIMARY) ON c.id = t.customer_pk
      LEFT JOIN ${allocations} al FORCE INDEX (allocations_tx_seq_uq) ON al.transaction_pk = t.id
      LEFT JOIN ${accounts} a FORCE INDEX (PRIMARY) ON a.id = al.account_id
    WHERE ${transactionsNamedSql(holds)}
    ORDER BY t.id, al.seq
    FOR UPDATE`;

/** SQL condition: transaction `t` is one of these. */
export const transactionsNamedSql = (holds: ReadonlyArray<{ readonly projectId: bigint; readonly transactionId: string }>): SQL =>
  keyListsSql(holds, byProject(sql`t`), sql`t.transaction_id`, (h) => h.transactionId);

/** How many of a transaction's allocation parts have an existing account (a plain read, no lock). */
export const countAllocationAccountsSql = (projectId: bigint, transactionId: string): SQL =>
  sql`SELECT COUNT(*) AS accounts FROM ${allocations} al JOIN ${accounts} a ON a.id = al.account_id
    WHERE ${allocationOf(projectId, transactionId)}`;

export const allocationFromRow = (row: Row): AllocationRow => ({ accountId: bigOf(row.al_account_id), amount: bigOf(row.al_amount) });

/** The customer pk of a transaction, as a subquery. */
export const transactionCustomerPkSql = (projectId: bigint, transactionId: string): SQL =>
  sql`(SELECT customer_pk FROM ${transactions} WHERE project_id = ${projectId} AND transaction_id = ${transactionId})`;

export interface DueHold {
  /** The hold's row id: what logs name it by (its transaction id is the caller's). */
  readonly pk: bigint;
  readonly transactionId: string;
  readonly projectId: bigint;
  /** As stored: parsed per hold (parseAutoAction), so one bad row does not stop the sweep. */
  readonly autoAction: string | null;
  readonly customerPk: bigint;
  /** Its place in the due order (auto_at, then row id): where the next read goes on from. */
  readonly after: DueCursor;
}

/** A due hold's action; an unknown one is not guessed (freeze_records_inconsistent). */
export const parseAutoAction = (hold: DueHold): AutoAction => oneOf(hold.autoAction, AUTO_ACTIONS, "auto_action");

/**
 * Up to `limit` FROZEN holds due by `nowMs`, soonest first, after `after` when given and not of the
 * customers in `busy`: a sweep goes on from where its last read ended, and leaves out the
 * customers it found busy, so that holds it had to leave do not come back in every read and keep
 * the ones behind them waiting.
 */
export async function listDueHolds(
  db: Db,
  nowMs: number,
  limit: number,
  after: DueCursor | null = null,
  busy: ReadonlySet<bigint> = new Set(),
): Promise<DueHold[]> {
  const past = pastCursorSql(transactions.autoAt, (ms) => new Date(ms), transactions.id, after);
  const rows = await db
    .select({
      pk: transactions.id,
      transactionId: transactions.transactionId,
      projectId: transactions.projectId,
      autoAction: transactions.autoAction,
      customerPk: transactions.customerPk,
      autoAt: transactions.autoAt,
    })
    .from(transactions)
    .where(
      and(
        eq(transactions.status, "FROZEN"),
        lte(transactions.autoAt, new Date(nowMs)),
        past,
        notOfCustomersSql(transactions.customerPk, busy),
      ),
    )
    .orderBy(asc(transactions.autoAt), asc(transactions.id))
    .limit(limit);
  return rows.map(({ autoAt, ...hold }) => ({ ...hold, after: { atMs: autoAt?.getTime() ?? nowMs, pk: hold.pk } }));
}

/** A transaction's allocation with each account's credit type and source, in order. */
export async function listAllocationLines(db: Db, transactionPk: bigint): Promise<AllocationLine[]> {
  return db
    .select({
      accountId: allocations.accountId,
      creditType: drizzleSql<string>`COALESCE(${accounts.creditType}, '')`,
      source: drizzleSql<string>`COALESCE(${accounts.source}, '')`,
      amount: allocations.amount,
    })
    .from(allocations)
    .leftJoin(accounts, eq(accounts.id, allocations.accountId))
    .where(eq(allocations.transactionPk, transactionPk))
    .orderBy(asc(allocations.seq));
}

/** What postponeAutoSettlement did: moved the deadline; left a busy hold (or one settled meanwhile); found it moved already. */
export type Postponement = "postponed" | "busy" | "moved";

/**
 * Moves a FROZEN hold's auto-settlement deadline from `fromMs` (as the sweeper read it) to
 * `untilMs`, so one that keeps failing does not block the queue. Its customer is locked first,
 * then the hold, as every write takes them; neither is waited for (SKIP LOCKED): a hold or
 * customer someone holds is being written, and the hold is left as it is. A deadline no longer
 * `fromMs` was moved by another instance whose settlement of it failed too (`moved`).
 */
export async function postponeAutoSettlement(
  database: Database,
  hold: { readonly projectId: bigint; readonly transactionId: string; readonly fromMs: number },
  untilMs: number,
): Promise<Postponement> {
  const { projectId, transactionId } = hold;
  return runTransaction(database, async (tx) => {
    const [customer] = await tx.run([
      sql`SELECT id FROM ${customers} WHERE id = ${transactionCustomerPkSql(projectId, transactionId)} FOR UPDATE SKIP LOCKED`,
    ]);
    if (rowsOf(customer).length === 0) return "busy";
    const [found] = await tx.run([
      sql`SELECT id, auto_at FROM ${transactions} WHERE project_id = ${projectId} AND transaction_id = ${transactionId} AND status = 'FROZEN'
        FOR UPDATE SKIP LOCKED`,
    ]);
    const row = rowsOf(found)[0];
    if (row === undefined) return "busy";
    if (msOf(row.auto_at) !== hold.fromMs) return "moved";
    await tx.run(
      guardedUpdateSql(sql`UPDATE ${transactions} SET auto_at = ${new Date(untilMs)} WHERE id = ${bigOf(row.id)} AND status = 'FROZEN'`, 1),
      {
        commit: true,
      },
    );
    return "postponed";
  });
}

/** A customer's holds still FROZEN, newest first, at most `limit` (by transactions_customer_status_idx). */
export async function listOpenHolds(db: Db, projectId: bigint, customerPk: bigint, limit: number): Promise<TransactionRow[]> {
  const [rows] = (await db.execute(
    sql`SELECT t.*, c.customer_id AS c_customer_id FROM ${transactions} t JOIN ${customers} c ON c.id = t.customer_pk
      WHERE t.customer_pk = ${customerPk} AND t.status = 'FROZEN' AND t.project_id = ${projectId}
      ORDER BY t.id DESC LIMIT ${limit}`,
  )) as unknown as [Row[]];
  return rows.flatMap((row) => transactionFromRow(row) ?? []);
}
