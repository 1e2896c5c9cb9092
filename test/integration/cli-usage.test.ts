import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { ROOT } from "../support/spawn.js";

// The README promises exit code 2 for usage mistakes, one line on standard error each.
let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ API_KEY_CACHE_TTL_MS: "0" });
});
afterAll(async () => s?.stop());

function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: s.databaseUrl },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr })));
}

describe("--version", () => {
  it("prints package.json's version alone and exits 0", async () => {
    const { version } = JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")) as { version: string };
    for (const flag of ["--version", "-V"]) expect(await cli(flag)).toEqual({ code: 0, stdout: `${version}\n`, stderr: "" });
  });
});

describe("usage mistakes exit 2 with one line", () => {
  it.each([
    [
      "an unknown mode",
      ["projects", "create", "p_mode", "--mode", "prod"],
      "error: option '--mode <mode>' argument 'prod' is invalid. mode must be live or test",
    ],
    [
      "a negative rate",
      ["projects", "create", "p_neg", "--rate", "-1"],
      "error: option '--rate <n>' argument '-1' is invalid. --rate must be a non-negative integer",
    ],
    [
      "a rate that is not a number",
      ["projects", "create", "p_abc", "--rate", "abc"],
      "error: option '--rate <n>' argument 'abc' is invalid. --rate must be a non-negative integer",
    ],
    [
      "a burst for an unlimited project",
      ["projects", "create", "p_free_burst", "--rate", "0", "--burst", "10"],
      "velobase-billing: an unlimited project (--rate 0) takes no --burst: a burst applies only with a rate",
    ],
    [
      "a burst under the default rate",
      ["projects", "create", "p_burst", "--burst", "50"],
      "velobase-billing: burst (50) must be at least the rate (5000/s; --rate sets it)",
    ],
    ["a missing --project", ["keys", "create"], "error: required option '--project <name>' not specified"],
    ["keys revoke without an argument", ["keys", "revoke"], "error: missing required argument 'prefix'"],
    ["an unknown command", ["frobnicate"], "error: unknown command 'frobnicate'"],
    // Commander drops extra arguments unless told not to: this revoked the first key alone.
    [
      "keys revoke with two prefixes",
      ["keys", "revoke", "vb_test_aaaaaaaa", "vb_test_bbbbbbbb"],
      "error: too many arguments for 'revoke'. Expected 1 argument but got 2.",
    ],
    [
      "a rate past its range",
      ["projects", "create", "p_big", "--rate", "1000000000"],
      "velobase-billing: rate must be an integer from 0 (unlimited) to 1000000",
    ],
    [
      "a label with a right-to-left override",
      ["keys", "create", "--project", "default", "--label", "ci\u202Erunner"],
      "velobase-billing: label must be at most 128 characters without control or bidirectional control characters",
    ],
    [
      "projects list with an argument",
      ["projects", "list", "extra"],
      "error: too many arguments for 'list'. Expected 0 arguments but got 1.",
    ],
  ])("%s", async (_name, args, line) => {
    const run = await cli(...args);
    expect({ code: run.code, stderr: run.stderr.trim().split("\n"), stdout: run.stdout }).toEqual({ code: 2, stderr: [line], stdout: "" });
  });

  it("a label of 100 emoji is 100 characters, as its column counts them", async () => {
    const run = await cli("keys", "create", "--project", "default", "--label", "🔑".repeat(100));
    expect(run.code).toBe(0);
    expect((await cli("keys", "list", "--project", "default")).stdout).toContain("🔑".repeat(100));
  });

  it("--help is not a mistake", async () => {
    expect((await cli("--help")).code).toBe(0);
  });
});

describe("keys and projects", () => {
  it("keys revoke given the whole key revokes it by its prefix, and never prints the key", async () => {
    const { key } = await s.createKey();
    const client = s.clientWith(key);
    await expectError(client.call("getCustomer", { customerId: "nobody" }), "customer_not_found");
    const run = await cli("keys", "revoke", key);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^revoked ${key.slice(0, 16)}; running servers refuse it within API_KEY_CACHE_TTL_MS`));
    expect(run.stdout + run.stderr).not.toContain(key);
    await expectError(client.call("getCustomer", { customerId: "nobody" }), "api_key_revoked");
  });

  it("keys revoke takes a whole key pasted with spaces, a line end or Bearer, and never echoes more than a prefix of a bad one", async () => {
    for (const pasted of [(k: string) => `${k} `, (k: string) => `${k}\r\n`, (k: string) => `Bearer ${k}`]) {
      const { key } = await s.createKey();
      const run = await cli("keys", "revoke", pasted(key));
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^revoked ${key.slice(0, 16)}; `));
      expect(run.stdout + run.stderr).not.toContain(key);
    }
    const { key } = await s.createKey();
    const garbled = `${key}!`;
    const run = await cli("keys", "revoke", garbled);
    expect({ code: run.code, stderr: run.stderr }).toEqual({
      code: 2,
      stderr: `velobase-billing: "${key.slice(0, 16)}…" is neither a key nor a key's prefix (give the prefix keys list shows, or the whole key)\n`,
    });
    // A well-formed key that is not this one, though it starts with its prefix: not revoked.
    const lookalike = `${key.slice(0, -1)}${key.endsWith("x") ? "y" : "x"}`;
    const other = await cli("keys", "revoke", lookalike);
    expect({ code: other.code, stderr: other.stderr }).toEqual({
      code: 2,
      stderr: `velobase-billing: no key is the one given (its prefix ${key.slice(0, 16)})\n`,
    });
    await expectError(s.clientWith(key).call("getCustomer", { customerId: "nobody" }), "customer_not_found");
    expect(await cli("keys", "revoke", " ")).toEqual({
      code: 2,
      stdout: "",
      stderr: "velobase-billing: give the key's prefix (keys list shows it) or the whole key\n",
    });
    // A prefix cut short names none, and says how long one is.
    const short = await cli("keys", "revoke", key.slice(0, 11));
    expect({ code: short.code, stderr: short.stderr }).toEqual({
      code: 2,
      stderr: `velobase-billing: no key with prefix "${key.slice(0, 11)}" (a prefix is the key's first 16 characters, as keys list shows it)\n`,
    });
  });

  it("projects list shows an unlimited project's burst as unlimited", async () => {
    const name = uid("free").replaceAll("-", "_");
    expect((await cli("projects", "create", name, "--rate", "0")).code).toBe(0);
    // A burst alone would do nothing to it: refused, saying why.
    expect(await cli("projects", "set", name, "--burst", "10")).toEqual({
      code: 2,
      stdout: "",
      stderr: `velobase-billing: project ${name} is unlimited (rate 0): a burst applies only with a rate; give --rate too\n`,
    });
    const row = (await cli("projects", "list")).stdout.split("\n").find((line) => line.includes(` ${name} `));
    expect(row?.trim().split(/\s+/).slice(1, 5)).toEqual([name, "test", "unlimited", "unlimited"]);
  });
});
