import type { FastifyReply, FastifyRequest } from "fastify";
import { OPERATIONS } from "../domain/types.js";
import { BillingError } from "../errors/billing-error.js";
import type { AuthenticatedCaller } from "../tenancy/authenticator.js";
import type { BillingContext } from "../operations/context.js";
import { readBalanceHistory } from "../operations/balance-history.js";
import { listEntitlements } from "../operations/entitlements/read-entitlements.js";
import { getCustomer } from "../operations/get-customer.js";
import { getTransaction } from "../operations/get-transaction.js";
import { listLedgerEntries } from "../operations/list-ledger.js";
import { listOpenHolds } from "../operations/open-holds.js";
import { searchCustomers } from "../operations/search-customers.js";
import { listPools } from "../operations/slots/list-slots.js";
import { listTransactionEntries } from "../operations/transaction-entries.js";
import { consoleCallerOf, type ConsoleScope, newFormKey, renderPage } from "./console-scope.js";
import {
  cursorOf,
  idOrNull,
  ledgerFiltersOf,
  type LedgerFilters,
  type QueryValues,
  RANGE_NAMES,
  type RangeName,
  rangeOf,
  rangeWindow,
  searchTextOf,
} from "./page-queries.js";

/** Entries per ledger page in the console. */
const LEDGER_PAGE_SIZE = 20;

interface PageRoute {
  Params: { id: string };
  Querystring: QueryValues;
}

/**
 * The page of an unknown customer: the same for an id of another project as for one nobody has.
 * `customerId` null: the URL holds no id at all, and its text is not shown (a link could make the
 * console say anything in its own page).
 */
const unknownCustomer = (request: FastifyRequest, reply: FastifyReply, customerId: string | null) => {
  request.errorCode = "customer_not_found"; // for the call's log line and metrics
  return renderPage(request, reply, "unknown", "Not found", { what: "customer", id: customerId }, 404);
};

/** The console's words for a page link (its `cursor`) the listing refuses, which the API's message names page_token. */
function inConsoleWords(error: unknown): unknown {
  if (!(error instanceof BillingError) || error.code !== "invalid_page_token") return error;
  return new BillingError(
    "invalid_page_token",
    "This page link is not valid for this search (its cursor was made for another one): start again from the first page.",
    { field: "cursor" },
  );
}

async function chartOf(ctx: BillingContext, caller: AuthenticatedCaller, customerId: string, range: RangeName) {
  const history = await readBalanceHistory(ctx, { projectId: caller.projectId, customerId, ...rangeWindow(range, ctx.now()) });
  const data = {
    points: history.points.map((p) => ({
      entryId: p.entryId.toString(),
      t: p.atMs,
      available: p.available.toString(),
      frozen: p.frozen.toString(),
    })),
  };
  return { range, ranges: RANGE_NAMES, points: history.points, truncated: history.truncated, chartJson: JSON.stringify(data) };
}

/** The ledger section: a page of entries for the filters, or the filters' error in its place. */
async function ledgerOf(ctx: BillingContext, caller: AuthenticatedCaller, customerId: string, query: QueryValues) {
  let filters: LedgerFilters;
  try {
    filters = ledgerFiltersOf(query);
  } catch (error) {
    if (!(error instanceof BillingError)) throw error;
    return { filters: { operation: null, transactionId: null, after: "", before: "" }, error: error.message, entries: [], next: "" };
  }
  try {
    const page = await listLedgerEntries(ctx, {
      projectId: caller.projectId,
      customerId,
      operations: filters.operation === null ? [] : [filters.operation],
      transactionId: filters.transactionId,
      creditType: null,
      reversesTransactionId: null,
      reversesRecordId: null,
      createdAfterMs: filters.createdAfterMs,
      createdBeforeMs: filters.createdBeforeMs,
      pageSize: LEDGER_PAGE_SIZE,
      pageToken: filters.cursor,
    });
    return { filters, error: null, entries: page.entries, next: page.nextPageToken };
  } catch (thrown) {
    const error = inConsoleWords(thrown);
    if (!(error instanceof BillingError) || error.spec.httpStatus !== 400) throw error;
    return { filters, error: error.message, entries: [], next: "" };
  }
}

function registerCustomerPages(scope: ConsoleScope): void {
  const { app, deps } = scope;
  const onRequest = scope.signedIn;

  app.get<{ Querystring: QueryValues }>("/customers", { config: { access: "public" }, onRequest }, async (request, reply) => {
    const caller = consoleCallerOf(request);
    const ctx = deps.contextOf(request);
    const text = searchTextOf(request.query);
    const pageToken = cursorOf(request.query);
    const page = await searchCustomers(ctx, { projectId: caller.projectId, text, pageToken }).catch((error: unknown) => {
      throw inConsoleWords(error);
    });
    return renderPage(request, reply, "customers", "Customers", { q: text, page, firstPage: pageToken === null });
  });

  app.get<PageRoute>("/customers/:id", { config: { access: "public" }, onRequest }, async (request, reply) => {
    const caller = consoleCallerOf(request);
    const ctx = deps.contextOf(request);
    const customerId = idOrNull(request.params.id);
    if (customerId === null) return unknownCustomer(request, reply, null);
    let customer: Awaited<ReturnType<typeof getCustomer>>;
    try {
      customer = await getCustomer(ctx, { projectId: caller.projectId, customerId, includeInactive: true, asOfMs: null });
    } catch (error) {
      if (error instanceof BillingError && error.code === "customer_not_found") return unknownCustomer(request, reply, customerId);
      throw error;
    }
    const input = { projectId: caller.projectId, customerId };
    const [holds, chart, ledger, pools, entitlements] = await Promise.all([
      listOpenHolds(ctx, input),
      chartOf(ctx, caller, customerId, rangeOf(request.query)),
      ledgerOf(ctx, caller, customerId, request.query),
      listPools(ctx, { ...input, wallet: null }),
      listEntitlements(ctx, { ...input, featureKeys: [], includeExpired: true }),
    ]);
    return renderPage(request, reply, "customer", customer.name || customer.customerId, {
      customer,
      holds: holds.holds,
      moreHolds: holds.more,
      chart,
      ledger,
      operations: OPERATIONS,
      pools,
      entitlements,
      nowMs: ctx.now(),
      canWrite: caller.scope === "write",
      depositKey: newFormKey(),
    });
  });

  // The two parts htmx replaces in place; without JavaScript the full page does the same.
  app.get<PageRoute>("/customers/:id/chart", { config: { access: "public" }, onRequest }, async (request, reply) => {
    const caller = consoleCallerOf(request);
    const ctx = deps.contextOf(request);
    const customerId = idOrNull(request.params.id);
    if (customerId === null) throw new BillingError("customer_not_found");
    const chart = await chartOf(ctx, caller, customerId, rangeOf(request.query));
    return renderPage(request, reply, "chart", "Balance", { customerId, chart, fragment: true });
  });

  app.get<PageRoute>("/customers/:id/ledger", { config: { access: "public" }, onRequest }, async (request, reply) => {
    const caller = consoleCallerOf(request);
    const ctx = deps.contextOf(request);
    const customerId = idOrNull(request.params.id);
    if (customerId === null) throw new BillingError("customer_not_found");
    await getCustomer(ctx, { projectId: caller.projectId, customerId, includeInactive: false, asOfMs: null });
    const ledger = await ledgerOf(ctx, caller, customerId, request.query);
    return renderPage(request, reply, "ledger", "Ledger", {
      customerId,
      ledger,
      operations: OPERATIONS,
      range: rangeOf(request.query),
      fragment: true,
    });
  });
}

function registerTransactionPage(scope: ConsoleScope): void {
  const { app, deps } = scope;
  app.get<PageRoute>("/transactions/:id", { config: { access: "public" }, onRequest: scope.signedIn }, async (request, reply) => {
    const caller = consoleCallerOf(request);
    const ctx = deps.contextOf(request);
    const transactionId = idOrNull(request.params.id);
    const unknown = () => {
      request.errorCode = "transaction_not_found";
      return renderPage(request, reply, "unknown", "Not found", { what: "transaction", id: transactionId }, 404);
    };
    if (transactionId === null) return unknown();
    const input = { projectId: caller.projectId, transactionId };
    let transaction: Awaited<ReturnType<typeof getTransaction>>;
    try {
      transaction = await getTransaction(ctx, input);
    } catch (error) {
      if (error instanceof BillingError && error.code === "transaction_not_found") return unknown();
      throw error;
    }
    const entries = await listTransactionEntries(ctx, input);
    return renderPage(request, reply, "transaction", transaction.transactionId, {
      transaction,
      entries,
      nowMs: ctx.now(),
      canUnfreeze: caller.scope === "write" && transaction.kind === "FREEZE" && transaction.status === "FROZEN",
    });
  });
}

export function registerPageRoutes(scope: ConsoleScope): void {
  registerCustomerPages(scope);
  registerTransactionPage(scope);
}
