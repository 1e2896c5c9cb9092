import { and, eq, type SQL } from "drizzle-orm";
import type { IdempotencyEnvelope, StoredOutcome } from "../domain/idempotency.js";
import { stringOf } from "./row-values.js";
import type { Row } from "./run-transaction.js";
import { customers, outcomes } from "./schema.js";
import { reader, writer } from "./statement-builder.js";

/**
 * The stored outcome under an envelope's key, with the public id of the customer it was made
 * for. A plain read: the key's UNIQUE index settles races (the loser's insert fails and its
 * retry replays).
 */
export const findOutcomeSql = (projectId: bigint, envelope: Pick<IdempotencyEnvelope, "scope" | "key">): SQL =>
  reader
    .select({ customerId: customers.customerId, requestFingerprint: outcomes.requestFingerprint, response: outcomes.response })
    .from(outcomes)
    .innerJoin(customers, eq(customers.id, outcomes.customerPk))
    .where(and(eq(outcomes.projectId, projectId), eq(outcomes.scope, envelope.scope), eq(outcomes.idempotencyKey, envelope.key)))
    .getSQL();

/** The one row mapper of idempotency_outcomes (as selected by findOutcomeSql). */
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

/** Records what a keyed write answered; a second writer of the same key fails on the UNIQUE index. */
export const recordOutcomeSql = (projectId: bigint, o: NewOutcome): SQL =>
  writer
    .insert(outcomes)
    .values({
      projectId,
      scope: o.envelope.scope,
      idempotencyKey: o.envelope.key,
      customerPk: o.customerPk,
      requestFingerprint: o.envelope.requestFingerprint,
      response: o.response,
      createdAt: new Date(o.nowMs),
    })
    .getSQL();
