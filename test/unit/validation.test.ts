import { describe, expect, it } from "vitest";
import { canonicalJson, fingerprint } from "../../src/domain/fingerprint.js";
import { AMOUNT_MAX } from "../../src/domain/limits.js";
import { parseAmount, parseCreditTypes, parseId, parseMetadata, parseTimestamp } from "../../src/domain/validation.js";
import { codeOf } from "../support/code-of.js";
import { decodeJson, encodeJson } from "../../src/store/json-codec.js";

describe("field parsers", () => {
  it.each([
    ["", "customer_id_required"],
    ["a", "ok"],
    ["A-z_0.9:x@y", "ok"],
    ["x".repeat(128), "ok"],
    ["x".repeat(129), "invalid_argument"],
    ["has space", "invalid_argument"],
    ["emoji🙂", "invalid_argument"],
  ])("id %s → %s", (raw, code) => {
    expect(codeOf(() => parseId(raw, "customer_id", "customer_id_required"))).toBe(code);
  });

  it.each([
    [0n, "amount_must_be_positive"],
    [-1n, "amount_must_be_positive"],
    [1n, "ok"],
    [AMOUNT_MAX, "ok"],
    [AMOUNT_MAX + 1n, "invalid_argument"],
  ])("amount %s → %s", (raw, code) => {
    expect(codeOf(() => parseAmount(raw))).toBe(code);
  });

  it.each(
    [
      [{ seconds: -62_135_596_800n, nanos: 0 }, "ok"],
      [{ seconds: -62_135_596_801n, nanos: 0 }, "invalid_starts_at"],
      [{ seconds: 253_402_300_799n, nanos: 999_999_999 }, "ok"],
      [{ seconds: 253_402_300_800n, nanos: 0 }, "invalid_starts_at"],
      [{ seconds: 0n, nanos: -1 }, "invalid_starts_at"],
      [{ seconds: 0n, nanos: 1_000_000_000 }, "invalid_starts_at"],
    ].map(([raw, code]) => [`${String((raw as { seconds: bigint }).seconds)}s ${(raw as { nanos: number }).nanos}ns`, raw, code] as const),
  )("timestamp %s → %s", (_label, raw, code) => {
    expect(codeOf(() => parseTimestamp(raw as { seconds: bigint; nanos: number }, "starts_at", "invalid_starts_at"))).toBe(code);
  });

  it("keeps milliseconds of a timestamp", () => {
    expect(parseTimestamp({ seconds: 1n, nanos: 2_999_999 }, "t", "invalid_argument")).toBe(1002);
  });

  it("rounds a range bound's sub-millisecond part up, so that a time stored at t is before t + 0.5 ms", () => {
    expect(parseTimestamp({ seconds: 1n, nanos: 2_500_000 }, "t", "invalid_argument", "up")).toBe(1003);
    expect(parseTimestamp({ seconds: 1n, nanos: 2_000_000 }, "t", "invalid_argument", "up")).toBe(1002);
    expect(parseTimestamp({ seconds: 1n, nanos: 999_000_001 }, "t", "invalid_argument", "up")).toBe(2000);
    // Past the last millisecond it is that millisecond.
    expect(parseTimestamp({ seconds: 253_402_300_799n, nanos: 999_999_999 }, "t", "invalid_argument", "up")).toBe(253_402_300_799_999);
  });

  it("deduplicates and sorts credit types, so equal filters fingerprint equally", () => {
    expect(parseCreditTypes(["b", "a", "b"])).toEqual(["a", "b"]);
    expect(codeOf(() => parseCreditTypes(["A"]))).toBe("invalid_credit_types");
  });

  it("limits metadata", () => {
    expect(codeOf(() => parseMetadata({ "": "x" }))).toBe("invalid_argument");
    expect(Object.keys(parseMetadata({ b: "1", a: "2" }))).toEqual(["a", "b"]);
  });

  it("keeps a metadata key named __proto__ as an own key, through storage too", () => {
    const sent = Object.fromEntries([
      ["__proto__", "p"],
      ["a", "1"],
    ]);
    const parsed = parseMetadata(sent);
    expect(Object.entries(parsed)).toEqual([
      ["__proto__", "p"],
      ["a", "1"],
    ]);
    expect(Object.entries(decodeJson<Record<string, string>>(encodeJson(parsed)))).toEqual([
      ["__proto__", "p"],
      ["a", "1"],
    ]);
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
  });
});

describe("fingerprints and stored responses", () => {
  it("ignore key order and keep bigints exact", () => {
    expect(canonicalJson({ b: 1n, a: [2n, { d: undefined, c: "x" }] })).toBe('{"a":["2",{"c":"x"}],"b":"1"}');
    expect(fingerprint({ a: 1, b: 2 })).toBe(fingerprint({ b: 2, a: 1 }));
    expect(fingerprint({ a: 1n })).not.toBe(fingerprint({ a: 2n }));
  });

  it("round-trip bigints beyond 2^53", () => {
    const value = { amount: 2n ** 62n + 1n, nested: [{ n: -5n }], text: "9" };
    expect(decodeJson(encodeJson(value))).toEqual(value);
  });
});
