import { describe, expect, it } from "vitest";
import { pageToReturnTo } from "../../src/console/console-plugin.js";

describe("the page a console sign-in leads back to", () => {
  it.each([
    ["/console/customers/cust_1", "/console/customers/cust_1"],
    ["/console/customers/a..b?range=30d&after=2026-01-01T10:00", "/console/customers/a..b?range=30d&after=2026-01-01T10:00"],
    ["/console/transactions/tx%3A1", "/console/transactions/tx%3A1"],
  ])("a console page: %s", (raw, expected) => {
    expect(pageToReturnTo(raw)).toBe(expected);
  });

  it.each([
    ["another site", "https://evil.example/console/"],
    ["a protocol-relative address", "//evil.example/console/"],
    ["a double slash inside", "/console//evil.example"],
    ["a backslash", "/console/\\evil.example"],
    ["a step up", "/console/../v1/customers"],
    ["an encoded step up", "/console/%2e%2e/v1/customers"],
    ["a path outside the console", "/v1/customers/x"],
    ["the console's root (no page)", "/console"],
    ["the sign-in page itself", "/console/sign-in?next=/console/customers"],
    ["white space", "/console/customers/a b"],
    ["a character beyond ASCII (a Location header cannot carry it)", "/console/customers/日"],
    ["a full-width solidus", "/console/／／evil.example"],
    ["a control character", "/console/customers/a\u0001b"],
    ["DEL", "/console/customers/a\u007fb"],
    ["not a string", ["/console/customers/x"]],
    ["too long", `/console/customers/${"a".repeat(2_100)}`],
  ])("refused: %s", (_name, raw) => {
    expect(pageToReturnTo(raw)).toBeNull();
  });
});
