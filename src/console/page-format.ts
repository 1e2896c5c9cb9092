/** How the console writes values: amounts grouped by thousands, times in UTC, ids in URLs. */

const GROUPING = new Intl.NumberFormat("en-US");

export const amountText = (amount: bigint): string => GROUPING.format(amount);

/** `2026-01-01 12:00:00Z`; "—" for no bound. */
export const timeText = (ms: number | null): string =>
  ms === null
    ? "—"
    : new Date(ms)
        .toISOString()
        .replace("T", " ")
        .replace(/\.\d{3}Z$/, "Z");

export const isoOf = (ms: number): string => new Date(ms).toISOString();

/** A console URL naming a customer or a transaction (ids may hold `:` and `@`). */
export const customerPath = (customerId: string): string => `/console/customers/${encodeURIComponent(customerId)}`;
export const transactionPath = (transactionId: string): string => `/console/transactions/${encodeURIComponent(transactionId)}`;

/** `?a=1&b=2` of the non-empty values. */
export function queryOf(values: Readonly<Record<string, string | null | undefined>>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) if (value !== null && value !== undefined && value !== "") params.set(key, value);
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

/** Everything a template may call; passed to each as `it.f`. */
export const FORMAT = { amountText, timeText, isoOf, customerPath, transactionPath, queryOf };
