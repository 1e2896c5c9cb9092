import { sql } from "./sql.js";
import { chunksOf } from "./statement-chunks.js";
import type { Db, Reader } from "./database.js";
import { UNFLAGGED_ALERT_CUSTOMERS } from "./alerts-store.js";
import { PUBLISHER_MARKS_SQL } from "./event-feed-store.js";

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

/** A figure of a verify row (a sum over no rows is NULL: 0). */
export const bigOfRow = (v: VerifyRow[string] | undefined): bigint => BigInt(v ?? 0);

/** A count or a 0/1 flag of a verify row. */
export const countOfRow = (v: VerifyRow[string] | undefined): number => Number(v ?? 0);

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
    SUM(CASE WHEN operation = 'EXPIRE' THEN 1 ELSE 0 END) AS expire_entries,
    COUNT(*) AS entries
  FROM ledger_entries GROUP BY account_id ORDER BY account_id`;

const LEDGER_BY_TRANSACTION = sql`SELECT transaction_pk,
    SUM(CASE WHEN operation = 'DEDUCT' THEN amount ELSE 0 END) AS deducted,
    SUM(CASE WHEN operation = 'FREEZE' THEN amount ELSE 0 END) AS held,
    SUM(CASE WHEN operation = 'CONSUME' THEN amount ELSE 0 END) AS consumed,
    SUM(CASE WHEN operation = 'CONSUME' AND overage = 1 THEN amount ELSE 0 END) AS overage,
    SUM(CASE WHEN operation = 'UNFREEZE' THEN amount ELSE 0 END) AS returned,
    SUM(CASE WHEN operation = 'REFUND' THEN amount ELSE 0 END) AS refunded
  FROM ledger_entries WHERE transaction_pk IS NOT NULL GROUP BY transaction_pk ORDER BY transaction_pk`;

/** Accounts given back more by a charge's refunds than the charge took from them (none when the ledger is sound). */
const OVER_REFUNDED_ACCOUNTS = sql`SELECT transaction_pk, account_id,
    SUM(CASE WHEN operation IN ('DEDUCT', 'CONSUME') THEN amount ELSE 0 END) AS charged,
    SUM(CASE WHEN operation = 'REFUND' THEN amount ELSE 0 END) AS refunded
  FROM ledger_entries WHERE transaction_pk IS NOT NULL GROUP BY transaction_pk, account_id
  HAVING refunded > charged ORDER BY transaction_pk, account_id`;

/** Voids that name no deposit of their account, or remove more than it added (none when the ledger is sound). */
const UNSOUND_VOIDS = sql`SELECT v.reverses_record_id AS record_id, SUM(v.amount) AS voided, MAX(d.amount) AS deposited,
    MAX(d.operation) AS operation, COUNT(DISTINCT v.account_id) AS accounts, MAX(v.account_id) AS account_id,
    MAX(d.account_id) AS deposit_account_id
  FROM ledger_entries v LEFT JOIN ledger_entries d ON d.id = v.reverses_record_id
  WHERE v.operation = 'VOID' GROUP BY v.reverses_record_id
  HAVING deposited IS NULL OR operation <> 'DEPOSIT' OR voided > deposited OR accounts <> 1 OR account_id <> deposit_account_id
  ORDER BY record_id`;

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
    sql`SELECT t.id, t.project_id, t.transaction_id, t.kind, t.status, t.amount, t.consumed_amount, t.returned_amount,
        t.overage_amount, t.refunded_amount,
        (SELECT COALESCE(SUM(al.amount), 0) FROM allocations al WHERE al.transaction_pk = t.id) AS allocated
      FROM transactions t`,
  );

/** Entries written on an account of another customer (or project), or under another credit type or source than it has. */
export const entriesOffTheirAccount = (db: Reader) =>
  rows(
    db,
    sql`SELECT e.account_id, COUNT(*) AS entries, MIN(e.id) AS first_entry,
        SUM(e.customer_pk <> a.customer_pk OR e.project_id <> a.project_id) AS other_customer,
        SUM(e.credit_type <> a.credit_type) AS other_credit_type, SUM(e.source <> a.source) AS other_source
      FROM ledger_entries e JOIN accounts a ON a.id = e.account_id
      WHERE e.customer_pk <> a.customer_pk OR e.project_id <> a.project_id OR e.credit_type <> a.credit_type OR e.source <> a.source
      GROUP BY e.account_id ORDER BY e.account_id`,
  );

/** Entries under a transaction of another customer (or project). */
export const entriesOffTheirTransaction = (db: Reader) =>
  rows(
    db,
    sql`SELECT t.project_id, t.transaction_id, COUNT(*) AS entries, MIN(e.id) AS first_entry
      FROM ledger_entries e JOIN transactions t ON t.id = e.transaction_pk
      WHERE e.customer_pk <> t.customer_pk OR e.project_id <> t.project_id
      GROUP BY t.id, t.project_id, t.transaction_id ORDER BY t.id`,
  );

/**
 * Per transaction and account, its allocation against its DEDUCT and FREEZE entries, where they
 * differ (an allocation of a missing transaction included): one sort of both, no index needed.
 */
export const allocationMismatches = (db: Reader) =>
  rows(
    db,
    sql`SELECT d.transaction_pk, d.account_id, d.allocated, d.charged, t.project_id, t.transaction_id
      FROM (
        SELECT x.transaction_pk, x.account_id, SUM(x.allocated) AS allocated, SUM(x.charged) AS charged
        FROM (
          SELECT transaction_pk, account_id, amount AS allocated, 0 AS charged FROM allocations
          UNION ALL
          SELECT transaction_pk, account_id, 0, amount FROM ledger_entries
            WHERE operation IN ('DEDUCT', 'FREEZE') AND transaction_pk IS NOT NULL
        ) x
        GROUP BY x.transaction_pk, x.account_id
        HAVING SUM(x.allocated) <> SUM(x.charged)
      ) d LEFT JOIN transactions t ON t.id = d.transaction_pk
      ORDER BY d.transaction_pk, d.account_id`,
  );

/**
 * Transactions against their stored outcomes, where they disagree: a charge with no SPEND outcome
 * (a retry would be refused as a duplicate instead of replayed), a settled hold with no SETTLE
 * outcome or an open one with one, an outcome of another customer, or an outcome of no transaction.
 */
export const transactionOutcomeMismatches = (db: Reader) =>
  rows(
    db,
    sql`SELECT x.project_id, x.idempotency_key, SUM(x.charges) AS charges, SUM(x.spend) AS spend, SUM(x.settle) AS settle,
        SUM(x.settled) AS settled, COUNT(DISTINCT x.customer_pk) AS customers
      FROM (
        SELECT project_id, transaction_id AS idempotency_key, customer_pk, 1 AS charges, 0 AS spend, 0 AS settle,
            CASE WHEN status IN ('CONSUMED', 'UNFROZEN') THEN 1 ELSE 0 END AS settled
          FROM transactions
        UNION ALL
        SELECT project_id, idempotency_key, customer_pk, 0, CASE WHEN scope = 'SPEND' THEN 1 ELSE 0 END,
            CASE WHEN scope = 'SETTLE' THEN 1 ELSE 0 END, 0
          FROM idempotency_outcomes WHERE scope IN ('SPEND', 'SETTLE')
      ) x
      GROUP BY x.project_id, x.idempotency_key
      HAVING SUM(x.charges) <> 1 OR SUM(x.spend) <> 1 OR SUM(x.settle) <> SUM(x.settled) OR COUNT(DISTINCT x.customer_pk) <> 1
      ORDER BY x.project_id, x.idempotency_key`,
  );

/**
 * A field of a stored outcome's JSON; NULL when the text is not JSON (MariaDB's JSON_EXTRACT
 * answers NULL there, MySQL's fails the whole statement with 3141).
 */
const outcomeFieldSql = (path: string) => sql`CASE WHEN JSON_VALID(o.response) THEN JSON_EXTRACT(o.response, ${path}) END`;

/**
 * Settled holds whose status disagrees with the settlement their stored SETTLE outcome answered: a
 * CONSUMED hold whose outcome is an Unfreeze's, or an UNFROZEN one whose outcome is a Consume's
 * (the amounts cannot tell a Consume of 0 from an Unfreeze; the answer a retry replays can).
 */
export const settleOutcomeMismatches = (db: Reader) =>
  rows(
    db,
    sql`SELECT t.project_id, t.transaction_id, t.status
      FROM transactions t JOIN idempotency_outcomes o
        ON o.project_id = t.project_id AND o.scope = 'SETTLE' AND o.idempotency_key = t.transaction_id
      WHERE (t.status = 'CONSUMED' AND ${outcomeFieldSql("$.consumedAmount")} IS NULL)
         OR (t.status = 'UNFROZEN' AND ${outcomeFieldSql("$.unfrozenAmount")} IS NULL)
      ORDER BY t.id`,
  );

/**
 * Keyed deposits, refunds and voids (their ledger entries) and keyed grants and revokes of slot
 * capacity (their slot events, scope SLOT) against their stored outcomes, where one is missing or
 * of another customer.
 */
export const keyedEntryOutcomeMismatches = (db: Reader) =>
  rows(
    db,
    sql`SELECT x.project_id, x.scope, x.idempotency_key, SUM(x.outcomes) AS outcomes, SUM(x.entries) AS entries,
        COUNT(DISTINCT x.customer_pk) AS customers
      FROM (
        SELECT project_id, scope, idempotency_key, customer_pk, 1 AS outcomes, 0 AS entries
          FROM idempotency_outcomes WHERE scope IN ('DEPOSIT', 'REFUND', 'VOID', 'SLOT')
        UNION ALL
        SELECT project_id, operation, idempotency_key, customer_pk, 0, 1
          FROM ledger_entries WHERE operation IN ('DEPOSIT', 'REFUND', 'VOID') AND idempotency_key <> ''
        UNION ALL
        SELECT project_id, 'SLOT', idempotency_key, customer_pk, 0, 1
          FROM slot_events WHERE type IN ('GRANT_CAPACITY', 'REVOKE_CAPACITY') AND idempotency_key IS NOT NULL
      ) x
      GROUP BY x.project_id, x.scope, x.idempotency_key
      HAVING SUM(x.outcomes) <> 1 OR SUM(x.entries) = 0 OR COUNT(DISTINCT x.customer_pk) <> 1
      ORDER BY x.project_id, x.scope, x.idempotency_key`,
  );

/** Customers with balance alerts whose has_alerts is off (their writes never read those alerts). */
export const customersWithUnflaggedAlerts = (db: Reader) =>
  rows(db, sql.raw(`SELECT DISTINCT c.project_id, c.customer_id ${UNFLAGGED_ALERT_CUSTOMERS} ORDER BY c.project_id, c.customer_id`));

/** Customers' public ids and projects, by their row ids, for the lines that name them (a statement per thousand). */
export async function customerNames(db: Reader, pks: readonly bigint[]): Promise<VerifyRow[]> {
  const found: VerifyRow[] = [];
  for (const chunk of chunksOf(pks)) {
    const list = sql.join(
      chunk.map((pk) => sql`${pk}`),
      sql`, `,
    );
    found.push(...(await rows(db, sql`SELECT id, project_id, customer_id FROM customers WHERE id IN (${list})`)));
  }
  return found;
}

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

/** The feed's stamped positions: their count and range, and what pruning has removed below them. */
export const eventPositions = (db: Reader) =>
  rows(
    db,
    sql`SELECT COUNT(position) AS stamped, MIN(position) AS low, MAX(position) AS high,
        (SELECT CAST(value AS UNSIGNED) FROM settings WHERE name = 'events_pruned_through') AS pruned
      FROM events`,
  );

/** Each publisher's stored mark, with the event at its position, the feed's top and how far it was pruned. */
export const publisherMarks = (db: Reader) => rows(db, sql.raw(PUBLISHER_MARKS_SQL));

/** The first position after `from` that no kept event holds (the feed's, or a project's). */
export async function firstMissingPosition(db: Reader, projectId: bigint | null, from: bigint): Promise<bigint> {
  const [found] =
    projectId === null
      ? await rows(
          db,
          sql`SELECT MIN(e.position) + 1 AS missing FROM events e
            WHERE e.position >= ${from} AND NOT EXISTS (SELECT 1 FROM events f WHERE f.position = e.position + 1)`,
        )
      : await rows(
          db,
          sql`SELECT MIN(e.project_position) + 1 AS missing FROM events e
            WHERE e.project_id = ${projectId} AND e.project_position >= ${from}
              AND NOT EXISTS (SELECT 1 FROM events f WHERE f.project_id = e.project_id AND f.project_position = e.project_position + 1)`,
        );
  return BigInt(found?.missing ?? from);
}

/** Each project's stamped positions, likewise. */
export const projectEventPositions = (db: Reader) =>
  rows(
    db,
    sql`SELECT e.project_id, COUNT(*) AS stamped, MIN(e.project_position) AS low, MAX(e.project_position) AS high,
        MAX(m.pruned_through) AS pruned
      FROM events e LEFT JOIN event_prune_marks m ON m.project_id = e.project_id
      WHERE e.project_position IS NOT NULL GROUP BY e.project_id ORDER BY e.project_id`,
  );

/** A stored number as binary text, to compare with what an event's JSON says of it whatever the database's collation. */
const asText = (column: string) => sql.raw(`CAST(${column} AS CHAR CHARACTER SET utf8mb4) COLLATE utf8mb4_bin`);

/** A JSON_TABLE column of binary text (the database's default collation could clash with the ledger's). */
const jsonText = (name: string, length: number, path: string) =>
  sql.raw(`${name} VARCHAR(${length}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '${path}'`);

// The event checks read each payload with JSON_TABLE only: a JSON function of the whole payload
// in a per-entry row would parse an event of 12,000 entries 12,000 times.

/**
 * The entries of kept events that disagree with the ledger: an event whose customer is gone, an
 * entry not in the ledger (by customer and sequence), one whose operation, amount, account,
 * credit type or balance_after differs from it, one of an operation its event type cannot have.
 * Values are compared as binary text, NULL-safe (a missing field is a difference); JSON_TABLE is
 * MariaDB 10.6+ and MySQL 8. At most `limit` rows, in event order.
 */
export const eventEntryMismatches = (db: Reader, operationsOfType: ReadonlyMap<string, readonly string[]>, limit: number) => {
  const typeAllows = sql.join(
    [...operationsOfType].map(
      ([type, operations]) =>
        sql`(e.type = ${type} AND j.operation IN (${sql.join(
          operations.map((o) => sql`${o}`),
          sql`, `,
        )}))`,
    ),
    sql` OR `,
  );
  const differs = (json: string, column: string) => sql`NOT (j.${sql.raw(json)} <=> ${asText(column)})`;
  return rows(
    db,
    sql`SELECT e.event_id, e.project_id, e.customer_id, e.type, j.seq, j.operation, le.id AS entry_id,
        c.id IS NULL AS customer_missing,
        ${differs("operation", "le.operation")} OR ${differs("amount", "le.amount")} OR ${differs("account_id", "le.account_id")}
          OR ${differs("credit_type", "le.credit_type")} AS entry_differs,
        ${differs("total", "le.balance_total")} OR ${differs("used", "le.balance_used")} OR ${differs("frozen", "le.balance_frozen")} AS balance_differs,
        NOT (${typeAllows}) AS type_differs
      FROM events e
      LEFT JOIN customers c ON c.project_id = e.project_id AND c.customer_id = e.customer_id
      CROSS JOIN JSON_TABLE(e.payload, '$.entries[*]' COLUMNS (
        ${jsonText("seq", 20, "$.sequence")},
        ${jsonText("operation", 16, "$.operation")},
        ${jsonText("amount", 40, "$.amount")},
        ${jsonText("account_id", 40, "$.account_id")},
        ${jsonText("credit_type", 64, "$.credit_type")},
        ${jsonText("total", 40, "$.balance_after.total")},
        ${jsonText("used", 40, "$.balance_after.used")},
        ${jsonText("frozen", 40, "$.balance_after.frozen")}
      )) AS j
      LEFT JOIN ledger_entries le ON le.customer_pk = c.id AND le.sequence = j.seq
      HAVING customer_missing OR entry_id IS NULL OR entry_differs OR balance_differs OR type_differs
      ORDER BY e.id
      LIMIT ${Math.trunc(limit)}`,
  );
};

/**
 * Events with entries whose shape is wrong: their sequences do not run on by one from the first to
 * the last (a write's entries take consecutive numbers), or their own balance_after is not their
 * last entry's (which eventEntryMismatches holds to the ledger). One JSON_TABLE row per event.
 */
export const eventShapeMismatches = (db: Reader, limit: number) =>
  rows(
    db,
    sql`SELECT e.event_id, j.first_seq,
        NOT (j.last_seq - j.first_seq + 1 <=> JSON_LENGTH(e.payload, '$.entries')) AS out_of_order,
        NOT (j.total <=> j.last_total AND j.used <=> j.last_used AND j.frozen <=> j.last_frozen) AS balance_differs
      FROM events e CROSS JOIN JSON_TABLE(e.payload, '$' COLUMNS (
        first_seq BIGINT PATH '$.entries[0].sequence',
        last_seq BIGINT PATH '$.entries[last].sequence',
        ${jsonText("total", 40, "$.balance_after.total")},
        ${jsonText("used", 40, "$.balance_after.used")},
        ${jsonText("frozen", 40, "$.balance_after.frozen")},
        ${jsonText("last_total", 40, "$.entries[last].balance_after.total")},
        ${jsonText("last_used", 40, "$.entries[last].balance_after.used")},
        ${jsonText("last_frozen", 40, "$.entries[last].balance_after.frozen")}
      )) AS j
      HAVING j.first_seq IS NOT NULL AND (out_of_order OR balance_differs)
      ORDER BY e.id
      LIMIT ${Math.trunc(limit)}`,
  );
