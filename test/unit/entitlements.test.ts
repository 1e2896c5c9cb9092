import { describe, expect, it } from "vitest";
import {
  isActive,
  parseEntitlementValue,
  parseFeatureKey,
  planSet,
  visibleEntitlements,
  type EntitlementView,
} from "../../src/domain/entitlements.js";
import { parseClosedValues, parseLimit } from "../../src/domain/event-query.js";
import { decodeEventCursor, encodeEventCursor } from "../../src/domain/event-cursor.js";
import { codeOf } from "../support/code-of.js";

const NOW = Date.UTC(2026, 0, 1);
const view = (featureKey: string, over: Partial<EntitlementView> = {}): EntitlementView => ({
  entitlementId: 1n,
  featureKey,
  value: "v",
  validFromMs: null,
  validUntilMs: null,
  source: null,
  description: null,
  metadata: null,
  ...over,
});
const fields = (over: Partial<EntitlementView> = {}) => {
  const { entitlementId: _id, ...rest } = view("model", over);
  return rest;
};

describe("set", () => {
  it("creates, then replaces with the old value", () => {
    expect(planSet(null, fields())).toMatchObject({ isCreated: true, oldValue: null });
    expect(planSet(view("model", { value: "a" }), fields({ value: "b" }))).toMatchObject({ isCreated: false, oldValue: "a" });
  });

  it.each([
    ["until after from", NOW, NOW + 1, "ok"],
    ["until equal to from", NOW, NOW, "entitlement_validation_error"],
    ["until before from", NOW, NOW - 1, "entitlement_validation_error"],
    ["until in the past, no from", null, NOW - 1_000_000, "ok"],
    ["only from", NOW, null, "ok"],
  ])("window: %s → %s", (_name, validFromMs, validUntilMs, code) => {
    expect(codeOf(() => planSet(null, fields({ validFromMs, validUntilMs })))).toBe(code);
  });
});

describe("activity and visibility", () => {
  it.each([
    ["unbounded", null, null, true],
    ["expires exactly now", null, NOW, false],
    ["expires later", null, NOW + 1, true],
    ["starts later", NOW + 1, null, false],
    ["started exactly now", NOW, null, true],
  ])("%s → active %s", (_name, validFromMs, validUntilMs, active) => {
    expect(isActive(view("k", { validFromMs, validUntilMs }), NOW)).toBe(active);
  });

  it("hides expired ones unless asked, then flags them inactive", () => {
    const all = [view("a"), view("b", { validUntilMs: NOW - 1 }), view("c", { validFromMs: NOW + 1 })];
    expect(visibleEntitlements(all, NOW, false).map((e) => [e.featureKey, e.isActive])).toEqual([
      ["a", true],
      ["c", false],
    ]);
    expect(visibleEntitlements(all, NOW, true).map((e) => [e.featureKey, e.isActive])).toEqual([
      ["a", true],
      ["b", false],
      ["c", false],
    ]);
  });
});

describe("field parsers", () => {
  it.each([
    ["", "feature_key_required"],
    ["model", "ok"],
    ["has space", "invalid_argument"],
    ["x".repeat(128), "ok"],
    ["x".repeat(129), "invalid_argument"],
  ])("feature_key %j → %s", (raw, code) => {
    expect(codeOf(() => parseFeatureKey(raw))).toBe(code);
  });

  it.each([
    ["", "value_required"],
    ["gpt-4", "ok"],
    ["x".repeat(4096), "ok"],
    ["x".repeat(4097), "invalid_argument"],
  ])("value of length %# → %s", (raw, code) => {
    expect(codeOf(() => parseEntitlementValue(raw))).toBe(code);
  });

  it.each([
    [null, "ok"],
    [1, "ok"],
    [100, "ok"],
    [0, "invalid_limit"],
    [-1, "invalid_limit"],
    [101, "invalid_limit"],
    [1.5, "invalid_limit"],
  ])("limit %s → %s", (raw, code) => {
    expect(codeOf(() => parseLimit(raw))).toBe(code);
  });

  it("limit defaults to 20", () => {
    expect(parseLimit(null)).toBe(20);
  });

  it("closed values are deduplicated and sorted; unknown ones refused", () => {
    expect(parseClosedValues(["SET", "REMOVE", "SET"], ["SET", "REMOVE"] as const, "types", 32)).toEqual(["REMOVE", "SET"]);
    expect(codeOf(() => parseClosedValues(["DELETE"], ["SET", "REMOVE"] as const, "types", 32))).toBe("invalid_argument");
  });

  it("cursors are bound to their filters", () => {
    const cursor = encodeEventCursor(42n, "f1");
    expect(decodeEventCursor(cursor, "f1")).toBe(42n);
    expect(codeOf(() => decodeEventCursor(cursor, "f2"))).toBe("invalid_page_token");
    expect(codeOf(() => decodeEventCursor("garbage", "f1"))).toBe("invalid_page_token");
  });
});
