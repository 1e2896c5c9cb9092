import { CUSTOMER_SEARCH_PAGE_SIZE } from "../domain/limits.js";
import { BillingError } from "../errors/billing-error.js";
import { type CustomerSummary, searchCustomers as selectCustomers } from "../store/customers-store.js";
import { runQuery } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";

export interface CustomerSearch {
  readonly projectId: bigint;
  /** A prefix of the id (exact case), or of the name or email (any case); "" lists every customer. */
  readonly text: string;
  /** nextPageToken of the previous page, or null for the first. */
  readonly pageToken: string | null;
}

export interface CustomerSearchPage {
  readonly customers: ReadonlyArray<Omit<CustomerSummary, "pk">>;
  /** "" on the last page. */
  readonly nextPageToken: string;
}

/**
 * A page token: the pk the next page starts below, bound to the search text it was issued for.
 * Its own shape, not page-cursor.ts's: console links hold tokens of this shape, and instances of
 * one build and the next serve them side by side during an upgrade.
 */
const encodeToken = (pk: bigint, text: string): string =>
  Buffer.from(JSON.stringify({ before: pk.toString(), text })).toString("base64url");

function decodeToken(token: string, text: string): bigint {
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { before?: unknown; text?: unknown };
    if (parsed.text === text && typeof parsed.before === "string" && /^\d{1,20}$/.test(parsed.before)) return BigInt(parsed.before);
  } catch {
    // Falls through: an undecodable token is the caller's mistake.
  }
  throw new BillingError("invalid_page_token", undefined, { field: "page_token" });
}

/** Customers of the project matching the search, newest first, a page at a time. */
export function searchCustomers(ctx: BillingContext, q: CustomerSearch): Promise<CustomerSearchPage> {
  return runQuery(async () => {
    const before = q.pageToken === null ? null : decodeToken(q.pageToken, q.text);
    const rows = await selectCustomers(ctx.database.db, q.projectId, q.text, before, CUSTOMER_SEARCH_PAGE_SIZE + 1);
    const page = rows.slice(0, CUSTOMER_SEARCH_PAGE_SIZE);
    const last = page.at(-1);
    return {
      customers: page.map(({ pk: _pk, ...customer }) => customer),
      nextPageToken: rows.length > CUSTOMER_SEARCH_PAGE_SIZE && last ? encodeToken(last.pk, q.text) : "",
    };
  });
}
