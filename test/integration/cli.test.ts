import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { ROOT } from "../support/spawn.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

function cli(...args: string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: s.databaseUrl },
  });
  let stdout = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, stdout })));
}

describe("verify", () => {
  it("passes on a consistent ledger and names every difference after tampering", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    await s.client.call("freeze", { customerId, transactionId: uid("hold"), amount: 30n });
    const clean = await cli("verify");
    expect(clean).toEqual({ code: 0, stdout: "checked 1 accounts, 1 transactions, 2 ledger entries, 0 slot pools: 0 problem(s)\n" });

    await s.app.database.pool.query("UPDATE accounts SET total = total + 5, frozen = frozen - 1");
    const dirty = await cli("verify");
    expect(dirty.code).toBe(1);
    expect(dirty.stdout.split("\n").filter((l) => l.startsWith("account"))).toEqual([
      expect.stringMatching(/^account \d+: total is 105, ledger says 100$/),
      expect.stringMatching(/^account \d+: frozen is 29, ledger says 30$/),
    ]);
  });
});
