import { type SQL, sql } from "./sql.js";
import { outcomeMapKey } from "../domain/plans/write-list.js";
import type { IdempotencyEnvelope, OutcomeScope, StoredOutcome } from "../domain/idempotency.js";
import { bigOf, stringOf } from "./row-values.js";
import type { Row } from "./run-transaction.js";
import { customers, outcomes } from "./schema.js";
import { keyListsSql } from "./key-lists.js";
import { rowsPart, type WritePart } from "./write-set.js";

/**
 * The stored outcome under an envelope's key, with the public id of the customer it was made
 * for. A plain read: the key's UNIQUE index settles races (the loser's insert fails and its
 * retry replays). Hand-written like the other loads: every write reads it, and building it with
 * the query builder cost about 30 µs of CPU per call (half of a Freeze's load).
 */
export const findOutcomeSql = (projectId: bigint, envelope: Pick<IdempotencyEnvelope, "scope" | "key">): SQL =>
  sql`SELECT c.customer_id, o.request_fingerprint, o.response
    FROM ${outcomes} o JOIN ${customers} c ON c.id = o.customer_pk
    WHERE o.project_id = ${projectId} AND o.scope = ${envelope.scope} AND o.idempotency_key = ${envelope.key}`;

/** The stored outcomes of several keys (`o_project_id`, `o_scope` and `o_key` name each). */
export const findOutcomesSql = (
  keys: ReadonlyArray<{ readonly projectId: bigint; readonly scope: OutcomeScope; readonly key: string }>,
): SQL =>
  sql`SELECT o.project_id AS o_project_id, o.scope AS o_scope, o.idempotency_key AS o_key, c.customer_id, o.request_fingerprint,
      o.response
    FROM ${outcomes} o JOIN ${customers} c ON c.id = o.customer_pk
    WHERE ${keyListsSql(
      keys,
      (k) => ({ id: `${k.projectId}:${k.scope}`, condition: sql`o.project_id = ${k.projectId} AND o.scope = ${k.scope}` }),
      sql`o.idempotency_key`,
      (k) => k.key,
    )}`;

/** The rows of findOutcomesSql by their key (outcomeMapKey). */
export function outcomesFromRows(rows: readonly Row[]): Map<string, StoredOutcome> {
  const stored = new Map<string, StoredOutcome>();
  for (const row of rows) {
    const outcome = outcomeFromRow(row);
    if (outcome)
      stored.set(outcomeMapKey({ scope: stringOf(row.o_scope), projectId: bigOf(row.o_project_id), key: stringOf(row.o_key) }), outcome);
  }
  return stored;
}

/** The one row mapper of idempotency_outcomes (as selected by findOutcomeSql and findOutcomesSql). */
export function outcomeFromRow(row: Row | undefined): StoredOutcome | null {
  if (!row) return null;
  return {
    customerId: stringOf(row.customer_id),
    requestFingerprint: stringOf(row.request_fingerprint),
    response: stringOf(row.response),
  };
}

export interface NewOutcome {
  readonly envelope: IdempotencyEnvelope;
  readonly customerPk: bigint | SQL;
  /** The encoded response (json-codec), replayed as is. */
  readonly response: string | SQL;
  readonly nowMs: number;
}

const OUTCOMES_HEAD = sql`INSERT INTO ${outcomes} (project_id, scope, idempotency_key, customer_pk, request_fingerprint, response, created_at)`;

/** Records what a keyed write answered; a second writer of the same key fails on the UNIQUE index. */
export const outcomePart = (projectId: bigint, o: NewOutcome): WritePart =>
  rowsPart("idempotency_outcomes", OUTCOMES_HEAD, [
    sql`(${projectId}, ${o.envelope.scope}, ${o.envelope.key}, ${o.customerPk}, ${o.envelope.requestFingerprint}, ${o.response},
      ${new Date(o.nowMs)})`,
  ]);
