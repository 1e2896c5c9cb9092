import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { uniqueDatabaseUrl } from "../support/database.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { ROOT } from "../support/spawn.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ API_KEY_CACHE_TTL_MS: "200" });
});
afterAll(async () => {
  await s?.stop();
});

function cli(...args: string[]): Promise<{ code: number | null; stdout: string }> {
  return cliOn(s.databaseUrl, ...args).then(({ code, stdout }) => ({ code, stdout }));
}

function cliOn(databaseUrl: string, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr })));
}

describe("verify", () => {
  it("passes on a consistent ledger and names every difference after tampering", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    await s.client.call("freeze", { customerId, transactionId: uid("hold"), amount: 30n });
    const clean = await cli("verify");
    expect(clean).toEqual({
      code: 0,
      stdout: "checked 1 accounts, 1 transactions, 2 ledger entries, 2 events, 0 slot pools: 0 problem(s)\n",
    });

    await s.app.database.pool.query("UPDATE accounts SET total = total + 5, frozen = frozen - 1");
    const dirty = await cli("verify");
    expect(dirty.code).toBe(1);
    expect(dirty.stdout.split("\n").filter((l) => l.startsWith("account"))).toEqual([
      expect.stringMatching(/^account \d+: total is 105, ledger says 100$/),
      expect.stringMatching(/^account \d+: frozen is 29, ledger says 30$/),
    ]);
  });
});

describe("verify only reads", () => {
  const tables = async (name: string) =>
    (await s.app.database.pool.query("SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", [name]))[0];

  it("refuses a database that does not exist, and does not create it", async () => {
    const { url, name } = uniqueDatabaseUrl("vb_verify_missing");
    const run = await cliOn(url, "verify");
    expect(run).toMatchObject({ code: 1, stdout: "" });
    expect(run.stderr).toBe(`velobase-billing: there is no database ${name} (${url})\n`);
    const [schemas] = await s.app.database.pool.query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", [name]);
    expect(schemas).toEqual([]);
  });

  it("runs on a database created beforehand with a case-insensitive default collation (as MySQL images and managed services make them)", async () => {
    const { url, name, drop } = uniqueDatabaseUrl("vb_verify_ci");
    await s.app.database.pool.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
    try {
      expect((await cliOn(url, "migrate")).code).toBe(0);
      expect(await cliOn(url, "verify")).toEqual({
        code: 0,
        stdout: "checked 0 accounts, 0 transactions, 0 ledger entries, 0 events, 0 slot pools: 0 problem(s)\n",
        stderr: "",
      });
    } finally {
      await drop();
    }
  });

  it("refuses a database whose schema is behind this build, and migrates nothing", async () => {
    const { url, name, drop } = uniqueDatabaseUrl("vb_verify_empty");
    await s.app.database.pool.query(`CREATE DATABASE \`${name}\``);
    try {
      const run = await cliOn(url, "verify");
      expect(run).toMatchObject({ code: 1, stdout: "" });
      expect(run.stderr).toMatch(
        new RegExp(`^velobase-billing: database ${name} has \\d+ migration\\(s\\) of this build pending: run migrate first`),
      );
      expect(await tables(name)).toEqual([{ n: "0" }]);
    } finally {
      await drop();
    }
  });
});

describe("projects and keys", () => {
  it("creates and lists projects", async () => {
    const name = uid("shop").replaceAll("-", "_");
    const created = await cli("projects", "create", name, "--mode", "live", "--rate", "100", "--burst", "250");
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(new RegExp(`^created project ${name} \\(id \\d+, mode live, 100/s per key, burst 250\\)\\n$`));
    const unlimited = await cli("projects", "create", `${name}_free`, "--rate", "0");
    expect(unlimited.stdout).toContain("mode test, unlimited");
    const listed = (await cli("projects", "list")).stdout.trim().split("\n");
    expect(listed[0]?.split(/\s+/)).toEqual(["ID", "NAME", "MODE", "RATE", "BURST", "CREATED"]);
    expect(
      listed
        .find((l) => l.includes(` ${name} `))
        ?.split(/\s+/)
        .slice(1, 5),
    ).toEqual([name, "live", "100", "250"]);
    expect(
      listed
        .find((l) => l.includes(`${name}_free`))
        ?.split(/\s+/)
        .slice(1, 5),
    ).toEqual([`${name}_free`, "test", "unlimited", "unlimited"]);
    expect(await cli("projects", "create", name)).toEqual({ code: 2, stdout: "" });
  });

  it("changes a project's rate limit, which a running server applies within its key cache's time", async () => {
    const name = uid("lim").replaceAll("-", "_");
    await cli("projects", "create", name, "--rate", "1", "--burst", "1");
    const created = await cli("keys", "create", "--project", name);
    const client = s.clientWith(created.stdout.trimEnd().split("\n").at(-1) ?? "");
    await expectError(client.call("getCustomer", { customerId: "nobody" }), "customer_not_found");
    await expectError(client.call("getCustomer", { customerId: "nobody" }), "rate_limit_exceeded", undefined, { messageFree: true });

    expect(await cli("projects", "set", name, "--rate", "100")).toEqual({ code: 0, stdout: `project ${name}: 100/s per key, burst 200\n` });
    expect(await cli("projects", "set", name, "--burst", "500")).toEqual({
      code: 0,
      stdout: `project ${name}: 100/s per key, burst 500\n`,
    });
    // The server reads the new limit once its cached key expires (200 ms here).
    await expect
      .poll(() => client.call("getCustomer", { customerId: "nobody" }).catch((e: unknown) => (e as Error).message), { timeout: 5_000 })
      .toContain("customer");
    expect(await cli("projects", "set", name, "--rate", "0")).toEqual({ code: 0, stdout: `project ${name}: unlimited\n` });
    const row = (await cli("projects", "list")).stdout.split("\n").find((line) => line.includes(` ${name} `));
    expect(row?.trim().split(/\s+/).slice(1, 5)).toEqual([name, "test", "unlimited", "unlimited"]);

    for (const [args, line] of [
      [[name], "velobase-billing: give --rate, --burst or both"],
      [[name, "--rate", "100", "--burst", "50"], "velobase-billing: burst (50) must be at least the rate (100/s; --rate sets it)"],
      [["nosuch_project", "--rate", "5"], 'velobase-billing: no project named "nosuch_project"'],
    ] as const) {
      const refused = await cliOn(s.databaseUrl, "projects", "set", ...args);
      expect({ code: refused.code, stderr: refused.stderr.trim() }).toEqual({ code: 2, stderr: line });
    }
  });

  it("creates a key printed alone on the last line, lists it by prefix and revokes it", async () => {
    const name = uid("app").replaceAll("-", "_");
    await cli("projects", "create", name);
    const created = await cli("keys", "create", "--project", name, "--label", "ci runner", "--scope", "read");
    expect(created.code).toBe(0);
    const key = created.stdout.trimEnd().split("\n").at(-1) ?? "";
    expect(key).toMatch(/^vb_test_[0-9A-Za-z]{40}$/);
    const prefix = key.slice(0, 16);
    expect(created.stdout).toContain(
      `created read key ${prefix} for project ${name} in database ${new URL(s.databaseUrl).pathname.slice(1)};`,
    );

    const reader = s.clientWith(key);
    await expectError(reader.call("getCustomer", { customerId: "nobody" }), "customer_not_found");
    await expectError(reader.call("deposit", { customerId: "nobody", amount: 1n }), "permission_denied");

    const listed = (await cli("keys", "list", "--project", name)).stdout.trim().split("\n");
    expect(listed[0]?.split(/\s+/)).toEqual(["PREFIX", "LABEL", "SCOPE", "CREATED", "LAST_USED", "REVOKED"]);
    expect(listed).toHaveLength(2);
    expect(listed[1]).toMatch(new RegExp(`^${prefix}  ci runner  read   \\S+Z  \\S+Z  -$`));
    expect(listed.join("\n")).not.toContain(key);

    const revoked = await cli("keys", "revoke", prefix);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`^revoked ${prefix}; running servers refuse it within API_KEY_CACHE_TTL_MS`));
    await expect
      .poll(() => reader.call("getCustomer", { customerId: "nobody" }).catch((e: unknown) => (e as Error).message), { timeout: 5_000 })
      .toContain("revoked");
    expect((await cli("keys", "list", "--project", name)).stdout.trim().split("\n")[1]).toMatch(/\dZ$/);
    expect((await cli("keys", "revoke", prefix)).stdout).toBe(`${prefix} was already revoked\n`);
    expect((await cli("keys", "revoke", "vb_test_nosuchke")).code).toBe(2);
  });

  it("works as the README writes it: the key captured with tail -n 1", async () => {
    const name = uid("readme").replaceAll("-", "_");
    const run = (command: string) =>
      new Promise<string>((resolve) => {
        const child = spawn("bash", ["-c", command], { cwd: ROOT, env: { ...process.env, DATABASE_URL: s.databaseUrl } });
        let stdout = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.on("exit", () => resolve(stdout));
      });
    await run(`npm run cli -- projects create ${name}`);
    const key = (await run(`KEY=$(npm run cli -- keys create --project ${name} | tail -n 1) && echo "$KEY"`)).trim();
    expect(key).toMatch(/^vb_test_[0-9A-Za-z]{40}$/);
    await expectError(s.clientWith(key).call("getCustomer", { customerId: "nobody" }), "customer_not_found");
  });
});
