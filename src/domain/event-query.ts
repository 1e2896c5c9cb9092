import { BillingError } from "../errors/billing-error.js";
import type { ErrorCode } from "../errors/catalog.js";
import { EVENT_LIMIT_DEFAULT, EVENT_LIMIT_MAX } from "./limits.js";
import { parseTimestamp, type TimestampInput } from "./validation.js";

/** What the slot and entitlement event listings share: page size and time bounds. Pure. */

/** `limit` as sent: null when the caller left it out (then the default), else 1-100. */
export function parseLimit(raw: number | null): number {
  if (raw === null) return EVENT_LIMIT_DEFAULT;
  if (!Number.isInteger(raw) || raw < 1 || raw > EVENT_LIMIT_MAX) {
    throw new BillingError("invalid_limit", undefined, { field: "limit", value: String(raw) });
  }
  return raw;
}

/** A time bound given as a protobuf Timestamp (gRPC); a sub-millisecond part rounds up, as for every range bound. */
export const parseTimeBound = (raw: TimestampInput | undefined, field: string, code: ErrorCode): number | null =>
  parseTimestamp(raw, field, code, "up");

/** A deduplicated, sorted list of closed values; an unknown one → invalid_argument naming `field`. */
export function parseClosedValues<T extends string>(raw: readonly string[], allowed: readonly T[], field: string, max: number): T[] {
  if (raw.length > max) throw new BillingError("invalid_argument", `${field} holds at most ${max} values.`, { field });
  const parsed = raw.map((value) => {
    const found = allowed.find((a) => a === value);
    if (!found) throw new BillingError("invalid_argument", `${field} holds an unknown value.`, { field, value });
    return found;
  });
  return [...new Set(parsed)].sort();
}
