import { BillingError, echoed } from "../errors/billing-error.js";
import type { ErrorCode } from "../errors/catalog.js";
import {
  AMOUNT_MAX,
  CONSUME_AFTER_SECONDS_MAX,
  CREDIT_TYPE_PATTERN,
  CREDIT_TYPES_PER_REQUEST_MAX,
  ID_PATTERN,
  METADATA_KEY_LENGTH_MAX,
  METADATA_KEYS_MAX,
  METADATA_VALUE_LENGTH_MAX,
  SOURCE_PATTERN,
  TIMESTAMP_SECONDS_MAX,
  TIMESTAMP_SECONDS_MIN,
  UNFREEZE_AFTER_SECONDS_MAX,
} from "./limits.js";
import type { AutoAction, JsonValue, Metadata } from "./types.js";

/** Field parsers: each returns a normalized value or throws a BillingError naming the field. */

function invalid(code: ErrorCode, field: string, message: string): BillingError {
  return new BillingError(code, message, { field });
}

/** A required id; empty → `requiredCode`, malformed → invalid_argument. */
export function parseId(raw: string, field: string, requiredCode: ErrorCode = "invalid_argument"): string {
  if (raw === "") throw invalid(requiredCode, field, `${field} is required.`);
  if (!ID_PATTERN.test(raw)) {
    throw invalid("invalid_argument", field, `${field} must be 1-128 characters of [A-Za-z0-9_.:@-].`);
  }
  return raw;
}

/** An optional id: empty means absent. */
export function parseOptionalId(raw: string, field: string): string | null {
  return raw === "" ? null : parseId(raw, field);
}

export function parseAmount(raw: bigint, field = "amount"): bigint {
  if (raw <= 0n) throw invalid("amount_must_be_positive", field, `${field} must be a positive integer.`);
  if (raw > AMOUNT_MAX) throw invalid("invalid_argument", field, `${field} must be at most ${AMOUNT_MAX}.`);
  return raw;
}

export function parseActualAmount(raw: bigint | undefined): bigint | null {
  if (raw === undefined) return null;
  if (raw < 0n) {
    throw invalid("actual_amount_must_be_non_negative", "actual_amount", "actual_amount must not be negative.");
  }
  if (raw > AMOUNT_MAX) throw invalid("invalid_argument", "actual_amount", `actual_amount must be at most ${AMOUNT_MAX}.`);
  return raw;
}

export function parseCreditType(raw: string, fallback: string | null, field = "credit_type"): string {
  if (raw === "" && fallback !== null) return fallback;
  if (!CREDIT_TYPE_PATTERN.test(raw)) {
    throw invalid("invalid_credit_types", field, `${field} must be 1-64 characters of [a-z0-9_.-], got "${echoed(raw)}".`);
  }
  return raw;
}

/** A credit-type filter: deduplicated and sorted, so equal filters fingerprint equally. */
export function parseCreditTypes(raw: readonly string[]): string[] {
  if (raw.length > CREDIT_TYPES_PER_REQUEST_MAX) {
    throw invalid("invalid_credit_types", "credit_types", `At most ${CREDIT_TYPES_PER_REQUEST_MAX} credit types.`);
  }
  const parsed = raw.map((t) => parseCreditType(t, null, "credit_types"));
  return [...new Set(parsed)].sort();
}

export function parseSource(raw: string, fallback: string): string {
  if (raw === "") return fallback;
  if (!SOURCE_PATTERN.test(raw)) {
    throw invalid("invalid_argument", "source", "source must be 1-64 characters of [A-Za-z0-9_.:@-].");
  }
  return raw;
}

export function parseText(raw: string, field: string, lengthMax: number): string {
  if (raw.length > lengthMax) throw invalid("invalid_argument", field, `${field} must be at most ${lengthMax} characters.`);
  return raw;
}

/**
 * Metadata with its keys sorted. A value's length limit applies to the string, or to the JSON
 * text of any other value, which is how gRPC shows it.
 */
export function parseMetadata(raw: Readonly<Record<string, JsonValue>>): Metadata {
  const keys = Object.keys(raw);
  if (keys.length > METADATA_KEYS_MAX) {
    throw invalid("invalid_argument", "metadata", `metadata holds at most ${METADATA_KEYS_MAX} keys.`);
  }
  const sorted: Array<[string, JsonValue]> = [];
  for (const key of keys.sort()) {
    const value = raw[key] ?? "";
    if (key.length === 0 || key.length > METADATA_KEY_LENGTH_MAX) {
      throw invalid("invalid_argument", "metadata", `metadata keys must be 1-${METADATA_KEY_LENGTH_MAX} characters.`);
    }
    if (metadataValueText(value).length > METADATA_VALUE_LENGTH_MAX) {
      throw invalid("invalid_argument", "metadata", `metadata values must be at most ${METADATA_VALUE_LENGTH_MAX} characters.`);
    }
    sorted.push([key, value]);
  }
  // Object.fromEntries keeps a key named __proto__ as an own property; `sorted[key] = value`
  // would set the prototype instead and lose it.
  return Object.fromEntries(sorted);
}

/** A metadata value as a string: strings as they are, other JSON values as their JSON text. */
export function metadataValueText(value: JsonValue): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

export interface TimestampInput {
  readonly seconds: bigint;
  readonly nanos: number;
}

/**
 * How a time with a sub-millisecond part becomes milliseconds, as times are stored: dropped for a
 * time that is stored or looked up (`down`), rounded up for the bound of a range of stored times
 * (`up`: an entry stored at t is before t + 0.5 ms, so `created_before` t + 0.5 ms finds it and
 * `created_after` t + 0.5 ms does not).
 */
export type SubMillisecond = "down" | "up";

/** A protobuf Timestamp as epoch milliseconds (a sub-millisecond part rounded as `rounding` says). */
export function parseTimestamp(
  raw: TimestampInput | undefined,
  field: string,
  code: ErrorCode,
  rounding: SubMillisecond = "down",
): number | null {
  if (raw === undefined) return null;
  const { seconds, nanos } = raw;
  const valid =
    seconds >= TIMESTAMP_SECONDS_MIN && seconds <= TIMESTAMP_SECONDS_MAX && Number.isInteger(nanos) && nanos >= 0 && nanos < 1_000_000_000;
  if (!valid) throw invalid(code, field, `${field} is not a valid timestamp.`);
  const ms = Number(seconds) * 1000 + (rounding === "up" ? Math.ceil(nanos / 1_000_000) : Math.floor(nanos / 1_000_000));
  // A bound rounded up past the last millisecond is that millisecond: no time stored lies beyond it.
  return Math.min(ms, Number(TIMESTAMP_SECONDS_MAX) * 1000 + 999);
}

export interface ValidityWindow {
  readonly startsAtMs: number | null;
  readonly expiresAtMs: number | null;
}

/** expires_at must be in the future and after starts_at. */
export function checkValidityWindow(window: ValidityWindow, nowMs: number): void {
  const { startsAtMs, expiresAtMs } = window;
  if (expiresAtMs === null) return;
  if (expiresAtMs <= nowMs) throw invalid("invalid_expires_at", "expires_at", "expires_at must be in the future.");
  if (startsAtMs !== null && expiresAtMs <= startsAtMs) {
    throw invalid("invalid_datetime_range", "expires_at", "expires_at must be after starts_at.");
  }
}

export interface AutoSettlement {
  readonly action: AutoAction;
  readonly afterSeconds: bigint;
}

/** A freeze's auto-settlement: at most one of the two delays, each within its range. */
export function parseAutoSettlement(unfreezeAfter: bigint | undefined, consumeAfter: bigint | undefined): AutoSettlement | null {
  if (unfreezeAfter !== undefined && consumeAfter !== undefined) throw new BillingError("invalid_auto_settlement");
  const checkTtl = (seconds: bigint, max: bigint, field: string) => {
    if (seconds < 1n || seconds > max) {
      throw new BillingError("invalid_auto_settlement_ttl", `${field} must be between 1 and ${max}.`, { field });
    }
    return seconds;
  };
  if (unfreezeAfter !== undefined) {
    return { action: "UNFREEZE", afterSeconds: checkTtl(unfreezeAfter, UNFREEZE_AFTER_SECONDS_MAX, "unfreeze_after_seconds") };
  }
  if (consumeAfter !== undefined) {
    return { action: "CONSUME", afterSeconds: checkTtl(consumeAfter, CONSUME_AFTER_SECONDS_MAX, "consume_after_seconds") };
  }
  return null;
}

/** The largest ledger entry id (BIGINT UNSIGNED). */
const RECORD_ID_MAX = 18446744073709551615n;

/** What a ledger entry id must be, in the words both transports answer. */
export const notARecordIdMessage = (field: string): string => `${field} must be a ledger entry id (a positive integer).`;

/** A ledger entry id as the transports carry it (decimal text); empty → customer's mistake named by field. */
export function parseRecordId(raw: string, field = "record_id"): bigint {
  if (!/^[1-9][0-9]{0,19}$/.test(raw) || BigInt(raw) > RECORD_ID_MAX) {
    throw invalid("invalid_argument", field, notARecordIdMessage(field));
  }
  return BigInt(raw);
}

/** An optional amount (a Refund's, a VoidDeposit's): unset means "all there is"; set, it must be positive. */
export const parseOptionalAmount = (raw: bigint | undefined): bigint | null => (raw === undefined ? null : parseAmount(raw));
