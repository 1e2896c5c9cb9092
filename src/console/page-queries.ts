import { CUSTOMER_SEARCH_TEXT_MAX } from "../domain/limits.js";
import { OPERATIONS, type Operation } from "../domain/types.js";
import { parseId } from "../domain/validation.js";
import { BillingError } from "../errors/billing-error.js";

/** Query strings of the console's pages, parsed: a value out of place is an error the page shows. */

/** As Fastify parses a query string: a parameter given twice arrives as an array. */
export type QueryValues = Readonly<Record<string, string | readonly string[] | undefined>>;

function textOf(query: QueryValues, key: string): string {
  const value = query[key];
  if (typeof value === "object") throw new BillingError("invalid_argument", `Give ${key} once.`, { field: key });
  return (value ?? "").trim();
}

export function searchTextOf(query: QueryValues): string {
  const text = textOf(query, "q");
  if (text.length > CUSTOMER_SEARCH_TEXT_MAX) {
    throw new BillingError("invalid_argument", `Search for at most ${CUSTOMER_SEARCH_TEXT_MAX} characters.`, { field: "q" });
  }
  return text;
}

/** A page cursor as given, or null. */
export const cursorOf = (query: QueryValues): string | null => textOf(query, "cursor") || null;

/** The chart's ranges; the customer page opens on 7 days. */
export const RANGES = { "24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000, all: null } as const;
export type RangeName = keyof typeof RANGES;
export const RANGE_NAMES = Object.keys(RANGES) as RangeName[];
export const RANGE_DEFAULT: RangeName = "7d";

export function rangeOf(query: QueryValues): RangeName {
  const name = RANGE_NAMES.find((r) => r === textOf(query, "range"));
  return name ?? RANGE_DEFAULT;
}

/** [fromMs, toMs) of a range ending now (inclusive of now). */
export function rangeWindow(range: RangeName, nowMs: number): { fromMs: number; toMs: number } {
  const span = RANGES[range];
  return { fromMs: span === null ? 0 : nowMs - span, toMs: nowMs + 1 };
}

/** `2026-01-01T10:00` (a datetime-local input), with optional seconds and `Z`: a UTC time. */
const DATETIME_LOCAL = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2}(\.\d{1,3})?)?Z?$/;

export function utcTimeOf(
  text: string,
  field: string,
  code: "invalid_argument" | "invalid_expires_at" = "invalid_argument",
): number | null {
  if (text === "") return null;
  const m = DATETIME_LOCAL.exec(text);
  const written = m ? `${m[1]}T${m[2]}${m[3] ?? ":00"}` : "";
  const ms = m ? Date.parse(`${written}Z`) : Number.NaN;
  // Date.parse rolls an impossible day or hour over (02-30 is 03-02, 24:00 the next day): the
  // time it gives must read back as written, as the API's own parser requires.
  if (!Number.isFinite(ms) || !new Date(ms).toISOString().startsWith(written)) {
    throw new BillingError(code, `${field} must be a date and time (UTC), e.g. 2026-01-01T10:00.`, { field });
  }
  return ms;
}

/** The ledger's filters as the page's form sends them. */
export interface LedgerFilters {
  readonly operation: Operation | null;
  readonly transactionId: string | null;
  readonly after: string;
  readonly before: string;
  readonly createdAfterMs: number | null;
  readonly createdBeforeMs: number | null;
  readonly cursor: string | null;
}

export function ledgerFiltersOf(query: QueryValues): LedgerFilters {
  const op = textOf(query, "op");
  const operation = op === "" ? null : (OPERATIONS.find((o) => o === op) ?? null);
  if (op !== "" && operation === null) throw new BillingError("invalid_operation_type", undefined, { field: "op" });
  const tx = textOf(query, "tx");
  const after = textOf(query, "after");
  const before = textOf(query, "before");
  return {
    operation,
    transactionId: tx === "" ? null : parseId(tx, "transaction_id"),
    after,
    before,
    createdAfterMs: utcTimeOf(after, "after"),
    createdBeforeMs: utcTimeOf(before, "before"),
    cursor: cursorOf(query),
  };
}

/** A customer or transaction id from the URL; null when it cannot be one (the page then says unknown). */
export function idOrNull(raw: string): string | null {
  try {
    return parseId(raw, "id");
  } catch {
    return null;
  }
}
