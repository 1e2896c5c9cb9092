import { describe, expect, it } from "vitest";
import { apiKeyModeOf, apiKeyPrefixOf, generateApiKey, hashApiKey } from "../../src/domain/api-key.js";
import { scopeAllows } from "../../src/domain/caller.js";
import { presentedApiKey } from "../../src/tenancy/credentials.js";
import { codeOf } from "../support/code-of.js";

const random = (n: number) => "aZ09".repeat(Math.ceil(n / 4)).slice(0, n);

describe("API key format", () => {
  it("generates vb_<mode>_ and 40 base62 characters, different every time", () => {
    const keys = new Set(Array.from({ length: 200 }, () => generateApiKey("live")));
    expect(keys.size).toBe(200);
    for (const key of keys) expect(key).toMatch(/^vb_live_[0-9A-Za-z]{40}$/);
    expect(generateApiKey("test")).toMatch(/^vb_test_[0-9A-Za-z]{40}$/);
  });

  it.each([
    [`vb_test_${random(32)}`, "test"],
    [`vb_live_${random(96)}`, "live"],
    [`vb_test_${random(31)}`, null],
    [`vb_live_${random(97)}`, null],
    [`vb_prod_${random(40)}`, null],
    [`vb_test_${random(39)}-`, null],
    [` vb_test_${random(40)}`, null],
    ["", null],
  ])("reads the mode of %s as %s", (key, mode) => {
    expect(apiKeyModeOf(key)).toBe(mode);
  });

  it("stores a SHA-256 hex digest and shows a 16-character prefix", () => {
    expect(hashApiKey("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(hashApiKey("vb_test_x")).toMatch(/^[0-9a-f]{64}$/);
    expect(hashApiKey("vb_test_x")).not.toBe(hashApiKey("vb_test_X"));
    expect(apiKeyPrefixOf(`vb_test_ABCDEFGH${random(32)}`)).toBe("vb_test_ABCDEFGH");
  });
});

describe("scopes", () => {
  it.each([
    ["write", "write", true],
    ["write", "read", true],
    ["read", "read", true],
    ["read", "write", false],
  ] as const)("a %s key may call a %s method: %s", (held, required, allowed) => {
    expect(scopeAllows(held, required)).toBe(allowed);
  });
});

describe("presented key", () => {
  it.each([
    [[], [], null],
    [[""], [""], null],
    [["Bearer vb_test_abc"], [], "vb_test_abc"],
    [["bearer   vb_test_abc "], [], "vb_test_abc"],
    [["Bearer vb_test_abc  "], [], "vb_test_abc"],
    [[], [" vb_test_abc "], "vb_test_abc"],
    [["Bearer vb_test_abc"], ["vb_test_abc"], "vb_test_abc"],
    [["Basic dXNlcjpwYXNz"], [], "Basic dXNlcjpwYXNz"],
    [["Bearer"], [], "Bearer"],
  ])("authorization %j, x-api-key %j → %j", (authorization, xApiKey, expected) => {
    expect(presentedApiKey(authorization, xApiKey)).toBe(expected);
  });

  it.each([
    [["Bearer vb_test_abc", "Bearer vb_test_abc"], []],
    [["Bearer vb_test_abc", "Bearer vb_test_other"], []],
    [[], ["vb_test_abc", "vb_test_other"]],
    [["Bearer vb_test_abc"], ["vb_test_other"]],
    [["Basic dXNlcjpwYXNz"], ["vb_test_other"]],
  ])("authorization %j, x-api-key %j → invalid_api_key (more than one key)", (authorization, xApiKey) => {
    expect(codeOf(() => presentedApiKey(authorization, xApiKey))).toBe("invalid_api_key");
  });
});
