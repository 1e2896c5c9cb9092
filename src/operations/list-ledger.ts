import { LEDGER_ENTRY_BYTES_BESIDE_TEXT, LEDGER_PAGE_BYTES_MAX, LEDGER_SCAN_ROWS_MAX } from "../domain/limits.js";
import { beforeIdOf, encodePageCursor, filtersDigest, pageCursorPosition } from "../domain/page-cursor.js";
import { balanceOfPosition } from "../domain/ledger-position.js";
import { type Balance, OPERATIONS, type Metadata, type Operation } from "../domain/types.js";
import { BillingError } from "../errors/billing-error.js";
import { findCustomer } from "../store/customers-store.js";
import { decodeMetadata } from "../store/json-codec.js";
import { countLedgerEntries, type LedgerFilter, type LedgerViewRow, selectLedgerPage } from "../store/ledger-store.js";
import { businessTypeOf, closedValueOf } from "../store/row-values.js";
import { runQuery } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";

/** Which entries of a customer a caller lists (the store's filter, the customer by its id), and which page. */
export interface LedgerQuery extends Omit<LedgerFilter, "customerPk"> {
  readonly customerId: string;
  readonly pageSize: number;
  readonly pageToken: string | null;
  /** Also count every matching entry (an extra query, so only when asked: HTTP's total_count). */
  readonly countTotal?: boolean;
}

export interface LedgerPage {
  readonly entries: LedgerEntryView[];
  /** "" on the last page. */
  readonly nextPageToken: string;
  /** null unless the query asked for it. */
  readonly totalCount: number | null;
}

/** A ledger entry as shown to a caller. */
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
  /** Its place in the customer's ledger (1, 2, … without a gap). */
  readonly sequence: bigint;
  /** The customer's ledger balance after it (domain/ledger-position.ts). */
  readonly balanceAfter: Balance;
  /** A REFUND entry's charge; null otherwise. */
  readonly reversesTransactionId: string | null;
  /** A VOID entry's deposit; null otherwise. */
  readonly reversesRecordId: bigint | null;
}

/** An entry as a listing shows it (the ledger listing of every transport, the console's transaction page). */
export function ledgerEntryViewOf({ l: r, apiKeyPrefix, txDescription, txMetadata }: LedgerViewRow): LedgerEntryView {
  // A refund's entries name their charge, but carry the refund's own reason and metadata.
  const own = r.reversesTransactionId !== null;
  return {
    id: r.id,
    operation: closedValueOf(r.operation, OPERATIONS, "ledger_entries.operation"),
    amount: r.amount,
    accountId: r.accountId,
    creditType: r.creditType,
    source: r.source,
    transactionId: r.transactionId,
    idempotencyKey: r.idempotencyKey,
    businessType: businessTypeOf(r.businessType),
    description: own ? r.description : (txDescription ?? r.description),
    metadata: decodeMetadata(own ? r.metadata : (txMetadata ?? r.metadata)),
    automatic: r.automatic,
    overage: r.overage,
    createdAtMs: r.createdAt.getTime(),
    apiKeyPrefix,
    sequence: r.sequence,
    balanceAfter: balanceOfPosition({ sequence: r.sequence, total: r.balanceTotal, used: r.balanceUsed, frozen: r.balanceFrozen }),
    reversesTransactionId: r.reversesTransactionId,
    reversesRecordId: r.reversesRecordId,
  };
}

const filtersOf = (q: LedgerQuery): string => filtersDigest({ ...q, pageSize: undefined, pageToken: undefined, countTotal: undefined });

/** Entries strictly older (lower sequence) than the cursor's `before` come next. */
function decodeCursor(token: string, filters: string): bigint {
  const before = pageCursorPosition(token, filters, beforeIdOf);
  if (before === null) throw new BillingError("invalid_page_token", undefined, { field: "page_token" });
  return before;
}

/**
 * Newest first, keyset-paginated by sequence so pages stay stable while entries are appended. A
 * filtered page looks through at most LEDGER_SCAN_ROWS_MAX entries: when it finds fewer matches
 * than it holds, it ends early (possibly empty) with a next_page_token at the first entry it did
 * not look through.
 */
async function readLedgerPage(ctx: BillingContext, q: LedgerQuery): Promise<LedgerPage> {
  const filters = filtersOf(q);
  const before = q.pageToken === null ? null : decodeCursor(q.pageToken, filters);
  const { db } = ctx.database;
  const customer = await findCustomer(db, q.projectId, q.customerId);
  if (!customer) throw new BillingError("customer_not_found", undefined, { customer_id: q.customerId });

  // Counted up to the customer's position as read; the page is not bounded by it (entries committed
  // since show, and a ledger longer than its customer's position, which verify reports, is shown whole).
  const through = customer.ledgerSequence;
  const filter: LedgerFilter = { ...q, customerPk: customer.pk };
  const from = isFiltered(q) ? scanStart(before ?? through + 1n) : null;
  const [rows, totalCount] = await Promise.all([
    selectLedgerPage(db, filter, { from, before }, q.pageSize + 1),
    // Unfiltered, every entry counts: the sequences have no gap.
    q.countTotal ? (isFiltered(q) ? countThrough(ctx, filter, `${customer.pk}:${filters}`, through) : Number(through)) : null,
  ]);
  const entries = withinPageBytes(rows.slice(0, q.pageSize).map(ledgerEntryViewOf));
  const last = entries.at(-1);
  const nextBefore = rows.length > entries.length && last ? last.sequence : from;
  return { entries, nextPageToken: nextBefore === null ? "" : encodePageCursor({ before: nextBefore.toString() }, filters), totalCount };
}

/** The entries matching `filter` up to `through`, counted on from this instance's last count of the same filter. */
async function countThrough(ctx: BillingContext, filter: LedgerFilter, key: string, through: bigint): Promise<number> {
  const known = ctx.ledgerCounts?.known(key);
  const base = known && known.through <= through ? known : { through: null, count: 0 };
  const count = base.count + (await countLedgerEntries(ctx.database.db, filter, { after: base.through, through }));
  ctx.ledgerCounts?.remember(key, { through, count });
  return count;
}

const isFiltered = (q: LedgerQuery): boolean =>
  q.operations.length > 0 ||
  q.transactionId !== null ||
  q.reversesTransactionId !== null ||
  q.reversesRecordId !== null ||
  q.creditType !== null ||
  q.createdAfterMs !== null ||
  q.createdBeforeMs !== null;

/** The lowest sequence a filtered page below `before` looks at; null when it reaches the ledger's first entry. */
function scanStart(before: bigint): bigint | null {
  const from = before - BigInt(LEDGER_SCAN_ROWS_MAX);
  return from > 1n ? from : null;
}

/**
 * The first entries of a page whose descriptions and metadata fit LEDGER_PAGE_BYTES_MAX (at least
 * one): every entry shows its transaction's metadata, so 100 entries of one Deduct over many
 * accounts with large metadata made a 10 MB answer that gRPC clients refuse (4 MiB by default). A
 * shorter page says so with its next_page_token, as a full one does.
 */
function withinPageBytes(entries: readonly LedgerEntryView[]): LedgerEntryView[] {
  let bytes = 0;
  const fitting: LedgerEntryView[] = [];
  for (const entry of entries) {
    bytes += LEDGER_ENTRY_BYTES_BESIDE_TEXT + Buffer.byteLength(entry.description) + Buffer.byteLength(JSON.stringify(entry.metadata));
    if (bytes > LEDGER_PAGE_BYTES_MAX && fitting.length > 0) break;
    fitting.push(entry);
  }
  return fitting;
}

/** listLedgerEntries with storage failures translated (database down → service_unavailable). */
export const listLedgerEntries: typeof readLedgerPage = (ctx, input) => runQuery(() => readLedgerPage(ctx, input));
