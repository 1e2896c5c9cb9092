import { and, desc, eq, gte, inArray, lt, type SQL } from "drizzle-orm";
import { fingerprint } from "../domain/fingerprint.js";
import { OPERATIONS, type Metadata, type Operation } from "../domain/types.js";
import { BillingError } from "../errors/billing-error.js";
import { findCustomer } from "../store/customers-store.js";
import { decodeJson } from "../store/json-codec.js";
import { apiKeys, ledgerEntries, transactions } from "../store/schema.js";
import { oneOf } from "../store/row-values.js";
import { runQuery } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";

export interface LedgerQuery {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly operations: readonly Operation[];
  readonly transactionId: string | null;
  readonly creditType: string | null;
  readonly createdAfterMs: number | null;
  readonly createdBeforeMs: number | null;
  readonly pageSize: number;
  readonly pageToken: string | null;
}

export interface LedgerEntryView {
  readonly id: bigint;
  readonly operation: Operation;
  readonly amount: bigint;
  readonly accountId: bigint;
  readonly creditType: string;
  readonly source: string;
  readonly transactionId: string;
  readonly idempotencyKey: string;
  readonly businessType: number;
  readonly description: string;
  readonly metadata: Metadata;
  readonly automatic: boolean;
  readonly overage: boolean;
  readonly createdAtMs: number;
  /** Display prefix of the key that made it; null for entries the service wrote itself. */
  readonly apiKeyPrefix: string | null;
}

interface Cursor {
  /** Entries strictly older (lower id) than this one come next. */
  readonly before: string;
  /** Ties the token to the filters it was issued for. */
  readonly filters: string;
}

function filtersOf(q: LedgerQuery): string {
  return fingerprint({ ...q, pageSize: undefined, pageToken: undefined }).slice(0, 16);
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString("base64url");
}

function decodeCursor(token: string, filters: string): bigint {
  try {
    const cursor = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Partial<Cursor>;
    if (cursor.filters === filters && typeof cursor.before === "string" && /^\d{1,20}$/.test(cursor.before)) {
      return BigInt(cursor.before);
    }
  } catch {
    // Falls through to the error below: any undecodable token is the caller's mistake.
  }
  throw new BillingError("invalid_page_token", undefined, { field: "page_token" });
}

/** Newest first, keyset-paginated by id so pages stay stable while entries are appended. */
async function readLedgerPage(
  ctx: BillingContext,
  q: LedgerQuery,
): Promise<{ entries: LedgerEntryView[]; nextPageToken: string }> {
  const filters = filtersOf(q);
  const before = q.pageToken === null ? null : decodeCursor(q.pageToken, filters);
  const { db } = ctx.database;
  const customer = await findCustomer(db, q.projectId, q.customerId);
  if (!customer) throw new BillingError("customer_not_found", undefined, { customer_id: q.customerId });

  const conditions: SQL[] = [eq(ledgerEntries.projectId, q.projectId), eq(ledgerEntries.customerPk, customer.pk)];
  if (before !== null) conditions.push(lt(ledgerEntries.id, before));
  if (q.operations.length > 0) conditions.push(inArray(ledgerEntries.operation, [...q.operations]));
  if (q.transactionId !== null) conditions.push(eq(ledgerEntries.transactionId, q.transactionId));
  if (q.creditType !== null) conditions.push(eq(ledgerEntries.creditType, q.creditType));
  if (q.createdAfterMs !== null) conditions.push(gte(ledgerEntries.createdAt, new Date(q.createdAfterMs)));
  if (q.createdBeforeMs !== null) conditions.push(lt(ledgerEntries.createdAt, new Date(q.createdBeforeMs)));

  // A transaction's description and metadata are stored once, on the transaction (see
  // appendLedgerSql); entries without one (deposits, expiries) carry their own.
  const rows = await db
    .select({ l: ledgerEntries, apiKeyPrefix: apiKeys.prefix, txDescription: transactions.description, txMetadata: transactions.metadata })
    .from(ledgerEntries)
    .leftJoin(apiKeys, eq(apiKeys.id, ledgerEntries.apiKeyId))
    .leftJoin(transactions, eq(transactions.id, ledgerEntries.transactionPk))
    .where(and(...conditions))
    .orderBy(desc(ledgerEntries.id))
    .limit(q.pageSize + 1);
  const page = rows.slice(0, q.pageSize);
  const last = page.at(-1)?.l;
  const nextPageToken =
    rows.length > q.pageSize && last ? encodeCursor({ before: last.id.toString(), filters }) : "";
  return {
    entries: page.map(({ l: r, apiKeyPrefix, txDescription, txMetadata }) => ({
      id: r.id,
      operation: oneOf(r.operation, OPERATIONS, "operation"),
      amount: r.amount,
      accountId: r.accountId,
      creditType: r.creditType,
      source: r.source,
      transactionId: r.transactionId,
      idempotencyKey: r.idempotencyKey,
      businessType: r.businessType,
      description: txDescription ?? r.description,
      metadata: decodeJson<Metadata>(txMetadata ?? r.metadata),
      automatic: r.automatic,
      overage: r.overage,
      createdAtMs: r.createdAt.getTime(),
      apiKeyPrefix,
    })),
    nextPageToken,
  };
}

/** listLedgerEntries with storage failures translated (database down → service_unavailable). */
export const listLedgerEntries: typeof readLedgerPage = (ctx, input) => runQuery(() => readLedgerPage(ctx, input));
