import { describe, expect, it } from "vitest";
import { BusinessType } from "../../gen/velobase/billing/v1/billing.js";
import { amountToJson } from "../../src/http/json-amount.js";
import { isoToMs, msToIso } from "../../src/http/iso-time.js";
import { BUSINESS_TYPE_NAMES } from "../../src/http/schemas.js";
import { schemaIssueToError } from "../../src/http/schema-errors.js";
import { topLevelFieldAt, validUtf8Length } from "../../src/http/json-body.js";

describe("isoToMs", () => {
  it.each([
    ["2026-01-01T00:00:00.000Z", Date.UTC(2026, 0, 1)],
    ["2026-01-01T00:00:00Z", Date.UTC(2026, 0, 1)],
    ["2026-01-01T00:00Z", Date.UTC(2026, 0, 1)],
    ["2026-01-01", Date.UTC(2026, 0, 1)],
    ["2026-01-01T08:00:00+08:00", Date.UTC(2026, 0, 1)],
    ["2026-01-01T08:00:00+0800", Date.UTC(2026, 0, 1)],
    ["2026-01-01T08:00:00+08", Date.UTC(2026, 0, 1)],
    ["2025-12-31T19:00:00-05:00", Date.UTC(2026, 0, 1)],
    ["2026-01-01 00:00:00", Date.UTC(2026, 0, 1)],
    ["2026-01-01T00:00:00.5Z", Date.UTC(2026, 0, 1) + 500],
    ["2026-01-01T00:00:00.123999999Z", Date.UTC(2026, 0, 1) + 123],
    ["2024-02-29", Date.UTC(2024, 1, 29)],
    ["0001-01-01T00:00:00Z", -62_135_596_800_000],
    ["0099-06-01", Date.parse("0099-06-01T00:00:00Z")],
    ["9999-12-31T23:59:59.999Z", 253_402_300_799_999],
  ])("%s", (text, ms) => expect(isoToMs(text)).toBe(ms));

  it.each([
    "",
    "garbage",
    "2026",
    "2026-01",
    "20260101",
    "2026-1-1",
    "2025-02-29",
    "2026-04-31",
    "2026-00-10",
    "2026-01-01T24:00:00Z",
    "2026-01-01T23:60:00Z",
    "2026-01-01T23:59:60Z",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00+05:60",
    "2026-01-01T00:00:00.Z",
    "2026-01-01T00:00:00.1234567890Z",
    "0000-12-31",
    "0001-01-01T00:00:00+00:01",
    "10000-01-01",
    "2026-01-01Z",
    " 2026-01-01",
  ])("refuses %j", (text) => expect(isoToMs(text)).toBeNull());

  it("rounds a range bound's sub-millisecond digits up, and only those", () => {
    expect(isoToMs("2026-01-01T00:00:00.2365Z", "up")).toBe(Date.UTC(2026, 0, 1, 0, 0, 0, 237));
    expect(isoToMs("2026-01-01T00:00:00.2365Z")).toBe(Date.UTC(2026, 0, 1, 0, 0, 0, 236));
    expect(isoToMs("2026-01-01T00:00:00.236000Z", "up")).toBe(Date.UTC(2026, 0, 1, 0, 0, 0, 236));
    expect(isoToMs("2026-01-01T00:00:59.9991Z", "up")).toBe(Date.UTC(2026, 0, 1, 0, 1, 0, 0));
    expect(isoToMs("9999-12-31T23:59:59.9991Z", "up")).toBe(253_402_300_799_999);
  });

  it("round-trips with milliseconds in UTC", () => {
    expect(msToIso(Date.UTC(2026, 0, 1))).toBe("2026-01-01T00:00:00.000Z");
    expect(msToIso(isoToMs("0001-01-01") ?? 0)).toBe("0001-01-01T00:00:00.000Z");
  });
});

describe("amountToJson", () => {
  it("sends exact numbers and refuses anything beyond 2^53 - 1", () => {
    expect(amountToJson(0n)).toBe(0);
    expect(amountToJson(9_007_199_254_740_991n)).toBe(9_007_199_254_740_991);
    expect(() => amountToJson(9_007_199_254_740_992n)).toThrow(RangeError);
    expect(() => amountToJson(-9_007_199_254_740_992n)).toThrow(RangeError);
  });
});

describe("business type names", () => {
  it("list the proto enum's values in order", () => {
    const names = BUSINESS_TYPE_NAMES.map((_, value) => BusinessType[value]);
    expect(names).toEqual(["BUSINESS_TYPE_UNSPECIFIED", ...BUSINESS_TYPE_NAMES.slice(1).map((n) => `BUSINESS_TYPE_${n}`)]);
    // A value added to the proto needs its name here too.
    expect(BusinessType[BUSINESS_TYPE_NAMES.length]).toBeUndefined();
  });
});

describe("schemaIssueToError", () => {
  const issue = (keyword: string, instancePath: string, params: Record<string, unknown> = {}, message = "fails") => ({
    keyword,
    instancePath,
    params,
    message,
  });
  it.each([
    [issue("required", "", { requiredProperties: ["customer_id"] }), {}, "customer_id_required", "customer_id"],
    [issue("pattern", "/customer_id"), { customer_id: "" }, "customer_id_required", "customer_id"],
    [issue("pattern", "/customer_id"), { customer_id: "a b" }, "invalid_argument", "customer_id"],
    [issue("required", "", { requiredProperties: ["transaction_id"] }), {}, "transaction_id_required", "transaction_id"],
    [issue("required", "", { requiredProperties: ["amount"] }), {}, "amount_must_be_positive", "amount"],
    [issue("minimum", "/amount"), { amount: 0 }, "amount_must_be_positive", "amount"],
    [issue("type", "/amount"), { amount: 1.5 }, "amount_must_be_positive", "amount"],
    [issue("maximum", "/amount"), { amount: 1e16 }, "invalid_argument", "amount"],
    [issue("minimum", "/actual_amount"), { actual_amount: -1 }, "actual_amount_must_be_non_negative", "actual_amount"],
    [issue("type", "/actual_amount"), { actual_amount: 0.5 }, "invalid_argument", "actual_amount"],
    [issue("type", "/credit_types/3"), {}, "invalid_credit_types", "credit_types"],
    [issue("type", "/limit"), {}, "invalid_limit", "limit"],
    [issue("enum", "/operation_type"), {}, "invalid_operation_type", "operation_type"],
    [issue("type", "/name"), {}, "invalid_argument", "name"],
    [issue("type", "/customer_id"), { customer_id: null }, "customer_id_required", "customer_id"],
    [issue("type", "/amount"), { amount: null }, "amount_must_be_positive", "amount"],
    [issue("pattern", "/feature_key"), { feature_key: "" }, "feature_key_required", "feature_key"],
    [issue("pattern", "/feature_key"), { feature_key: "a b" }, "invalid_argument", "feature_key"],
    [issue("required", "", { requiredProperties: ["value"] }), {}, "value_required", "value"],
    [issue("type", "/valid_from"), { valid_from: 5 }, "invalid_valid_from", "valid_from"],
    [issue("type", "/valid_until"), { valid_until: 5 }, "invalid_valid_until", "valid_until"],
    [issue("type", "/from_at"), {}, "invalid_from_at", "from_at"],
    [issue("type", "/to_at"), {}, "invalid_to_at", "to_at"],
    [issue("pattern", "/wallet"), { wallet: "A B" }, "invalid_credit_types", "wallet"],
  ])("%j on %j → %s", (i, input, code, field) => {
    const error = schemaIssueToError(i, input);
    expect({ code: error.code, facts: error.facts }).toEqual({ code, facts: { field } });
  });

  it("a route's own codes override the shared ones (a slot wallet is not a credit wallet)", () => {
    const overrides = { wallet: { required: "wallet_required", invalid: "invalid_argument" } } as const;
    const malformed = schemaIssueToError(issue("pattern", "/wallet", {}, "must match pattern"), { wallet: "a b" }, overrides);
    expect({ code: malformed.code, message: malformed.message, facts: malformed.facts }).toEqual({
      code: "invalid_argument",
      message: "wallet must match pattern.",
      facts: { field: "wallet" },
    });
    const missing = schemaIssueToError(issue("required", "", { requiredProperties: ["wallet"] }), {}, overrides);
    expect({ code: missing.code, message: missing.message }).toEqual({ code: "wallet_required", message: "wallet is required." });
  });

  it("a body that is not an object names the body, as the JSON parser does", () => {
    const error = schemaIssueToError(issue("type", ""), []);
    expect({ code: error.code, message: error.message, facts: error.facts }).toEqual({
      code: "invalid_argument",
      message: "The request body must be a JSON object.",
      facts: { field: "body" },
    });
  });
});

describe("where a body stops being UTF-8", () => {
  it.each([
    ["ASCII", [0x61, 0x62], 2],
    ["é, €, 😀 in full", [...Buffer.from("é€😀")], 9],
    ["a lone continuation byte", [0x61, 0x80], 1],
    ["an overlong '/' (C0 AF)", [0x61, 0xc0, 0xaf], 1],
    ["an overlong three-byte form (E0 80 AF)", [0xe0, 0x80, 0xaf], 0],
    ["an encoded surrogate (ED A0 80)", [0x61, 0xed, 0xa0, 0x80], 1],
    ["past U+10FFFF (F4 90 80 80)", [0xf4, 0x90, 0x80, 0x80], 0],
    ["a character cut short", [0x61, 0xe2, 0x82], 1],
    ["0xFF", [0xff], 0],
  ])("%s", (_name, bytes, length) => {
    expect(validUtf8Length(Uint8Array.from(bytes))).toBe(length);
  });

  it.each([
    ['{"description":"a', "description"],
    ['{"customer_id":"c","metadata":{"k":["x","', "metadata"],
    ['{"a":1,"b', "body"],
    ['{"a":1,', "body"],
    ['{"a\\"b":"', 'a"b'],
    ['{"a\\u0041":"', "aA"],
    ['["', "body"],
    ['"', "body"],
    ['{"a":{"b":1},"c":"', "c"],
  ])("the text %s ends in field %s", (prefix, field) => {
    expect(topLevelFieldAt(prefix)).toBe(field);
  });
});
