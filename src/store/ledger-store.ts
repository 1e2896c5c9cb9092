import { sql, type SQL } from "drizzle-orm";
import type { Metadata, Operation } from "../domain/types.js";
import { encodeJson } from "./json-codec.js";
import { ledgerEntries } from "./schema.js";
import { chunksOf } from "./statement-chunks.js";

export interface NewLedgerEntry {
  readonly operation: Operation;
  readonly accountId: bigint | SQL;
  readonly amount: bigint;
  readonly creditType: string;
  readonly source: string;
  readonly overage?: boolean;
}

/** What every entry of one operation shares. */
export interface LedgerContext {
  readonly projectId: bigint;
  readonly customerPk: bigint | SQL;
  /** A literal pk, or SQL such as `@tx` naming the row inserted earlier in the batch. */
  readonly transactionPk: bigint | SQL | null;
  readonly transactionId: string;
  readonly idempotencyKey: string;
  readonly businessType: number;
  /** Stored on entries without a transaction only: a transaction's entries show its own. */
  readonly description: string;
  readonly metadata: Metadata;
  readonly automatic: boolean;
  readonly nowMs: number;
  /** The key that made the entries; absent or null when the service writes them itself (sweeper, expiry). */
  readonly apiKeyId?: bigint | null;
}

/**
 * Appends the entries, one statement per ROWS_PER_STATEMENT of them. The description and
 * metadata of a transaction are stored once, on its row, not copied into each of its entries
 * (a call touching thousands of accounts would copy 35 KB of metadata thousands of times);
 * listings read them from the transaction. A single entry's id is its statement's insertId.
 */
export function appendLedgerSql(context: LedgerContext, entries: readonly NewLedgerEntry[]): SQL[] {
  if (entries.length === 0) throw new Error("appendLedgerSql needs at least one entry");
  const ownText = context.transactionPk === null;
  const description = ownText ? context.description : "";
  const metadata = encodeJson(ownText ? context.metadata : {});
  const createdAt = new Date(context.nowMs);
  return chunksOf(entries).map((chunk) => {
    const rows = chunk.map(
      (e) => sql`(${context.projectId}, ${context.customerPk}, ${e.accountId}, ${e.operation}, ${e.amount}, ${e.creditType},
      ${e.source}, ${context.transactionPk}, ${context.transactionId}, ${context.idempotencyKey}, ${context.businessType},
      ${description}, ${metadata}, ${context.automatic}, ${e.overage ?? false}, ${createdAt}, ${context.apiKeyId ?? null})`,
    );
    return sql`INSERT INTO ${ledgerEntries} (project_id, customer_pk, account_id, operation, amount, credit_type, source,
      transaction_pk, transaction_id, idempotency_key, business_type, description, metadata, automatic, overage, created_at,
      api_key_id)
    VALUES ${sql.join(rows, sql`, `)}`;
  });
}
