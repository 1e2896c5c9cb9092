import { TIMESTAMP_SECONDS_MAX, TIMESTAMP_SECONDS_MIN } from "../domain/limits.js";
import { BillingError } from "../errors/billing-error.js";
import type { ErrorCode } from "../errors/catalog.js";
import type { SubMillisecond } from "../domain/validation.js";

/**
 * ISO 8601 as callers write it: a date (midnight UTC), or a date and time with optional seconds,
 * fraction (sub-millisecond digits dropped, or rounding up for a range bound: SubMillisecond) and offset (none means UTC: a
 * server has no meaningful local time). Weeks, ordinal dates and leap seconds are refused.
 */
const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?)?$/;

const MS_MIN = Number(TIMESTAMP_SECONDS_MIN) * 1000;
const MS_MAX = Number(TIMESTAMP_SECONDS_MAX) * 1000 + 999;

function offsetMinutesOf(offset: string): number | null {
  if (offset === "" || offset === "Z" || offset === "z") return 0;
  const digits = offset.slice(1).replace(":", "");
  const hours = Number(digits.slice(0, 2));
  const minutes = digits.length > 2 ? Number(digits.slice(2)) : 0;
  if (hours > 23 || minutes > 59) return null;
  return (offset[0] === "-" ? -1 : 1) * (hours * 60 + minutes);
}

/** Epoch milliseconds of an ISO 8601 text, or null when it is not one (or out of years 1-9999). */
export function isoToMs(text: string, rounding: SubMillisecond = "down"): number | null {
  const m = ISO_8601.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map((v) => Number(v ?? 0)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = m[7] ?? "";
  const ms = Number(fraction.padEnd(3, "0").slice(0, 3)) + (rounding === "up" && /[1-9]/.test(fraction.slice(3)) ? 1 : 0);
  const offsetMinutes = offsetMinutesOf(m[8] ?? "");
  if (offsetMinutes === null || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return null;
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0-99 as 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
  date.setUTCHours(hour, minute, second, ms);
  const epochMs = date.getTime() - offsetMinutes * 60_000;
  // A bound rounded up past the last millisecond is that millisecond: no time stored lies beyond it.
  if (rounding === "up" && epochMs === MS_MAX + 1) return MS_MAX;
  return epochMs >= MS_MIN && epochMs <= MS_MAX ? epochMs : null;
}

/** An optional ISO 8601 field; unparseable → `code` naming the field, in gRPC's words for a bad Timestamp. */
export function parseIsoField(text: string | undefined, field: string, code: ErrorCode, rounding: SubMillisecond = "down"): number | null {
  if (text === undefined) return null;
  const ms = isoToMs(text, rounding);
  if (ms === null) throw new BillingError(code, `${field} is not a valid timestamp.`, { field });
  return ms;
}

/** Output form: UTC with milliseconds, `2025-01-01T00:00:00.000Z`. */
export function msToIso(ms: number): string {
  return new Date(ms).toISOString();
}

export const msToIsoOrNull = (ms: number | null): string | null => (ms === null ? null : msToIso(ms));
