import { CREDIT_TYPE_PATTERN } from "../domain/limits.js";
import { BUSINESS_TYPE_NAMES } from "../domain/types.js";
import { BillingError } from "../errors/billing-error.js";

/** Column values as mysql2 returns them for our session settings (big numbers as strings). */

export function bigOf(value: unknown): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "string" || typeof value === "number") return BigInt(value);
  throw new Error(`expected an integer column, got ${typeof value}`);
}

export function numberOf(value: unknown): number {
  const n = typeof value === "string" || typeof value === "number" ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new Error(`expected a safe integer column, got ${String(value)}`);
  return n;
}

/** DATETIME text as the database sends it when a driver asks for text (drizzle's `execute`): UTC. */
const DATETIME_TEXT = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$/;

export function msOf(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value === "string" && DATETIME_TEXT.test(value)) {
    const ms = Date.parse(`${value.replace(" ", "T")}Z`);
    if (Number.isFinite(ms)) return ms;
  }
  throw new Error(`expected a DATETIME column, got ${typeof value}`);
}

export function stringOf(value: unknown): string {
  if (typeof value === "string") return value;
  throw new Error(`expected a text column, got ${typeof value}`);
}

export const boolOf = (value: unknown): boolean => Number(value) === 1;

/**
 * A stored value of a closed set (held by a CHECK), parsed: anything else is a corrupt row, an
 * assertion that fails the call as server_error. The value is not in the message: it is data.
 */
export function closedValueOf<T extends string>(value: unknown, allowed: readonly T[], column: string): T {
  const found = allowed.find((a) => a === value);
  if (found === undefined) throw new Error(`stored ${column} is not one of its known values`);
  return found;
}

/**
 * A transaction's column of a closed set, parsed: a row holding anything else (a bad migration, a
 * hand edit) stops the operation with freeze_records_inconsistent before anything is written, as
 * any other inconsistency of a hold's records does.
 */
export function oneOf<T extends string>(value: unknown, allowed: readonly T[], column: string): T {
  const found = allowed.find((a) => a === value);
  if (found === undefined) {
    throw new BillingError("freeze_records_inconsistent", undefined, { column, value: String(value) });
  }
  return found;
}

/** A stored business type: an index of BUSINESS_TYPE_NAMES, anything else as oneOf refuses it. */
export function businessTypeOf(value: unknown): number {
  const n = numberOf(value);
  if (n < 0 || n >= BUSINESS_TYPE_NAMES.length) {
    throw new BillingError("freeze_records_inconsistent", undefined, { column: "business_type", value: String(value) });
  }
  return n;
}

/** A hold's stored credit types: a JSON array of credit types, anything else as oneOf refuses it. */
export function creditTypesOf(value: unknown): string[] {
  const parsed: unknown = JSON.parse(stringOf(value));
  if (Array.isArray(parsed) && parsed.every((t) => typeof t === "string" && CREDIT_TYPE_PATTERN.test(t))) return parsed as string[];
  throw new BillingError("freeze_records_inconsistent", undefined, { column: "credit_types", value: String(value) });
}
