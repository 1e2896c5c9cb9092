import type { Metadata } from "../domain/types.js";

/** JSON that round-trips bigint: stored responses keep exact amounts. */

const BIGINT_TAG = "$bigint";

export function encodeJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? { [BIGINT_TAG]: v.toString() } : v));
}

export function decodeJson<T>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) => {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      const tagged = (v as Record<string, unknown>)[BIGINT_TAG];
      if (typeof tagged === "string" && Object.keys(v).length === 1) return BigInt(tagged);
    }
    return v;
  }) as T;
}

/**
 * A metadata column: plain JSON (never bigint-tagged, so a caller's own `{"$bigint": …}` value
 * reads back as given), and an object, or the row is corrupt.
 */
export function decodeMetadata(text: string): Metadata {
  const value: unknown = JSON.parse(text);
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("stored metadata is not a JSON object");
  return value as Metadata;
}
