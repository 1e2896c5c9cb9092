import { type SQL, sql } from "./sql.js";
import { type AccountDelta, mergeDeltas } from "../domain/account-deltas.js";
import { guardedUpdateSql, rowCountGuardCondition } from "./row-count-guard.js";
import { accounts, transactions } from "./schema.js";
import { chunksOf, rowChunksOf } from "./statement-chunks.js";

/** Tables whose new rows of several writes go into one INSERT, in this order (allocations and entries name their transaction). */
export const INSERT_ORDER = ["transactions", "idempotency_outcomes", "allocations", "ledger_entries"] as const;
export type InsertTarget = (typeof INSERT_ORDER)[number];

/**
 * One write's changes as parts that the changes of other writes in the same transaction can join:
 * settlements (one guarded UPDATE for all holds), account deltas (summed per account into one
 * guarded UPDATE), and new rows (one multi-row INSERT per table). A spend touching one account
 * is then 6 statements alone, and 32 spends side by side are still 6: what a statement costs
 * the database (parse, open, plan) is paid per statement, not per row.
 */
export type WritePart =
  | { readonly kind: "settle"; readonly holdPk: bigint; readonly settlement: Settlement }
  | { readonly kind: "deltas"; readonly deltas: readonly AccountDelta[] }
  | { readonly kind: "rows"; readonly into: InsertTarget; readonly head: SQL; readonly rows: readonly SQL[] };

/** A hold's settlement: FROZEN → CONSUMED | UNFROZEN. */
export interface Settlement {
  readonly status: "CONSUMED" | "UNFROZEN";
  readonly consumedAmount: bigint;
  readonly returnedAmount: bigint;
  readonly overageAmount: bigint;
  readonly automatic: boolean;
  readonly nowMs: number;
}

export const rowsPart = (into: InsertTarget, head: SQL, rows: readonly SQL[]): WritePart => ({ kind: "rows", into, head, rows });

/**
 * A statement to run right after a write set's guarded UPDATEs, which carries the last one's guard
 * (rowCountGuardCondition, null when there is none) in its WHERE: one statement fewer per write
 * set. It returns null when it has nothing to change; the guard then gets its own statement.
 */
export type GuardCarrier = (guard: SQL | null) => SQL | null;

/**
 * The statements of many writes' parts, merged: every settlement in one guarded UPDATE; then every
 * account delta, summed per account, in one guarded UPDATE; then the carrier, if any; then each
 * table's new rows in one INSERT, rows in write order (so ledger entry ids follow the order of the
 * writes). Each step splits at ROWS_PER_STATEMENT rows, and an INSERT also at STATEMENT_CHARS_MAX characters.
 */
export function writeSetSql(parts: readonly WritePart[], carrier?: GuardCarrier): SQL[] {
  const statements: SQL[] = [];
  const settlements: { holdPk: bigint; settlement: Settlement }[] = [];
  const deltas: AccountDelta[] = [];
  const rows = new Map<InsertTarget, { head: SQL; rows: SQL[] }>();
  for (const part of parts) {
    if (part.kind === "settle") settlements.push(part);
    else if (part.kind === "deltas") deltas.push(...part.deltas);
    else {
      const into = rows.get(part.into) ?? { head: part.head, rows: [] };
      into.rows.push(...part.rows);
      rows.set(part.into, into);
    }
  }
  const changed = mergeDeltas(deltas).filter((d) => d.used !== 0n || d.frozen !== 0n);
  statements.push(
    ...guardedUpdatesSql(
      [
        ...chunksOf(settlements).map((chunk) => ({ update: settleHoldsSql(chunk), rows: chunk.length })),
        ...chunksOf(changed).map((chunk) => ({ update: updateAccountsSql(chunk), rows: chunk.length })),
      ],
      carrier,
    ),
  );
  for (const target of INSERT_ORDER) {
    const insert = rows.get(target);
    if (insert) statements.push(...rowChunksOf(insert.rows).map((chunk) => sql`${insert.head} VALUES ${sql.join(chunk, sql`, `)}`));
  }
  return statements;
}

/** The UPDATEs, each followed by its guard, except the last one's when the carrier carries it. */
function guardedUpdatesSql(updates: readonly { update: SQL; rows: number }[], carrier: GuardCarrier | undefined): SQL[] {
  const last = updates.at(-1);
  const carried = carrier?.(last ? rowCountGuardCondition(last.rows) : null) ?? null;
  const statements = updates.flatMap((u) => (u === last && carried ? [u.update] : guardedUpdateSql(u.update, u.rows)));
  return carried ? [...statements, carried] : statements;
}

/** A value per row of an UPDATE over several ids. */
function caseById<T>(items: readonly T[], id: (item: T) => bigint, value: (item: T) => unknown): SQL {
  return sql`CASE id ${sql.join(
    items.map((item) => sql`WHEN ${id(item)} THEN ${value(item)}`),
    sql` `,
  )} END`;
}

/**
 * FROZEN → CONSUMED | UNFROZEN for each hold, guarded by the caller: it holds every row's lock, so
 * anything but one changed row per hold aborts.
 */
function settleHoldsSql(holds: readonly { holdPk: bigint; settlement: Settlement }[]): SQL {
  const pk = (h: { holdPk: bigint }) => h.holdPk;
  const of = (pick: (s: Settlement) => unknown) => caseById(holds, pk, (h) => pick(h.settlement));
  return sql`UPDATE ${transactions} SET status = ${of((s) => s.status)}, consumed_amount = ${of((s) => s.consumedAmount)},
      returned_amount = ${of((s) => s.returnedAmount)}, overage_amount = ${of((s) => s.overageAmount)},
      settled_automatically = ${of((s) => s.automatic)}, settled_at = ${of((s) => new Date(s.nowMs))}
    WHERE id IN (${idList(holds.map(pk))}) AND status = 'FROZEN'`;
}

/** Adds each delta to its account (the caller holds every row's lock). */
function updateAccountsSql(changed: readonly AccountDelta[]): SQL {
  const id = (d: AccountDelta) => d.accountId;
  return sql`UPDATE ${accounts} SET used = used + ${caseById(changed, id, (d) => d.used)},
      frozen = frozen + ${caseById(changed, id, (d) => d.frozen)}
    WHERE id IN (${idList(changed.map(id))})`;
}

const idList = (ids: readonly bigint[]): SQL =>
  sql.join(
    ids.map((id) => sql`${id}`),
    sql`, `,
  );
