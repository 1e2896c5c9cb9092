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
