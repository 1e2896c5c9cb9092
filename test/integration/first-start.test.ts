import { afterAll, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/domain/api-key.js";
import { openDatabase } from "../../src/store/database.js";
import { createApiKey } from "../../src/tenancy/api-keys.js";
import { createProject } from "../../src/tenancy/projects.js";
import { expectError, TestClient } from "../support/client.js";
import { uniqueDatabaseUrl } from "../support/database.js";
import { collect, spawnMain, waitForOutput } from "../support/spawn.js";

// `npm start` on a fresh database: someone must be able to get in, and the key is shown once.
const databases: Array<{ drop(): Promise<void> }> = [];
afterAll(async () => {
  for (const d of databases) await d.drop();
});

/** Starts src/main.ts, waits until it listens, returns its port and output so far, then stops it. */
async function runOnce(env: Record<string, string>, use: (port: number) => Promise<void> = async () => undefined) {
  const child = spawnMain({ GRPC_HOST: "127.0.0.1", GRPC_PORT: "0", SWEEP_INTERVAL_MS: "0", ...env });
  const out = collect(child);
  await waitForOutput(() => out.output().stdout, "velobase-billing listening");
  const port = Number(/"port":(\d+)/.exec(out.output().stdout)?.[1]);
  try {
    await use(port);
  } finally {
    child.kill("SIGTERM");
  }
  const exit = await out.exited;
  expect(exit.code).toBe(0);
  return exit;
}

describe("first start", () => {
  it("creates a write key for the default project, shows it once on standard error and logs only its prefix", async () => {
    const db = uniqueDatabaseUrl("vb_first");
    databases.push(db);
    const first = await runOnce({ DATABASE_URL: db.url });
    const lines = first.stderr.trim().split("\n");
    expect(lines[0]).toMatch(/^velobase-billing: first start: created project "default" \(mode test\) and a write API key/);
    const key = lines[1] ?? "";
    expect(key).toMatch(/^vb_test_[0-9A-Za-z]{40}$/);
    expect(first.stdout).not.toContain(key);
    expect(first.stdout).toContain(`"keyPrefix":"${key.slice(0, 16)}"`);

    const second = await runOnce({ DATABASE_URL: db.url }, async (port) => {
      const client = new TestClient(port, key);
      try {
        await expectError(client.call("getCustomer", { customerId: "nobody" }), "customer_not_found");
        expect((await client.call("deposit", { customerId: "first", amount: 9n })).balance?.available).toBe(9n);
      } finally {
        client.close();
      }
    });
    expect(second.stderr).toBe("");
  });

  it("stores BOOTSTRAP_API_KEY when it is missing and prints nothing", async () => {
    const db = uniqueDatabaseUrl("vb_boot");
    databases.push(db);
    const key = generateApiKey("test");
    for (let run = 0; run < 2; run++) {
      const exit = await runOnce({ DATABASE_URL: db.url, BOOTSTRAP_API_KEY: key }, async (port) => {
        const client = new TestClient(port, key);
        try {
          await expectError(client.call("getCustomer", { customerId: "nobody" }), "customer_not_found");
        } finally {
          client.close();
        }
      });
      expect(exit.stderr).toBe("");
      expect(exit.stdout).not.toContain(key);
    }
  });

  it("stores a live BOOTSTRAP_API_KEY on a fresh database, whose default project takes its mode; a test key later is refused", async () => {
    const db = uniqueDatabaseUrl("vb_live");
    databases.push(db);
    const key = generateApiKey("live");
    await runOnce({ DATABASE_URL: db.url, BOOTSTRAP_API_KEY: key }, async (port) => {
      const client = new TestClient(port, key);
      try {
        expect((await client.call("deposit", { customerId: "live-1", amount: 3n })).balance?.available).toBe(3n);
      } finally {
        client.close();
      }
    });
    const other = await collect(spawnMain({ DATABASE_URL: db.url, BOOTSTRAP_API_KEY: generateApiKey("test"), GRPC_PORT: "0" })).exited;
    expect({ code: other.code, stderr: other.stderr }).toEqual({
      code: 2,
      stderr: 'velobase-billing: BOOTSTRAP_API_KEY is a test key but the project "default" is in live mode\n',
    });
  });

  it("refuses in one line a BOOTSTRAP_API_KEY whose prefix is another key's, and warns when it is another project's read key", async () => {
    const db = uniqueDatabaseUrl("vb_bootp");
    databases.push(db);
    const key = generateApiKey("test");
    await runOnce({ DATABASE_URL: db.url, BOOTSTRAP_API_KEY: key });
    // A hand-chosen key rotated by its last characters keeps its first 16, which name keys.
    const rotated = `${key.slice(0, -1)}${key.endsWith("x") ? "y" : "x"}`;
    const refused = await collect(spawnMain({ DATABASE_URL: db.url, BOOTSTRAP_API_KEY: rotated, GRPC_PORT: "0" })).exited;
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({
      code: 2,
      stderr: `velobase-billing: BOOTSTRAP_API_KEY's first 16 characters are another key's prefix (${key.slice(0, 16)}): choose a key that differs in them\n`,
    });
    expect(refused.stderr + refused.stdout).not.toContain(rotated);

    const database = await openDatabase(db.url);
    const shop = await createProject(database, { name: "shop", mode: "test", ratePerSecond: 0 }, Date.now());
    const readKey = await createApiKey(database, shop, { label: "reader", scope: "read", nowMs: Date.now() });
    await database.close();
    const warned = await runOnce({ DATABASE_URL: db.url, BOOTSTRAP_API_KEY: readKey.key });
    expect(warned.stdout).toContain(`"keyPrefix":"${readKey.prefix}","scope":"read"`);
    expect(warned.stdout).toContain("BOOTSTRAP_API_KEY is already a key, but not a write key of project default; it was left as it is");
    expect(warned.stdout).not.toContain(readKey.key);
  });

  it("refuses a malformed BOOTSTRAP_API_KEY in one line without echoing it", async () => {
    const exit = await collect(spawnMain({ BOOTSTRAP_API_KEY: "vb_test_short-secret", GRPC_PORT: "0" })).exited;
    expect(exit.code).toBe(2);
    expect(exit.stderr.trim()).toBe(
      "velobase-billing: invalid configuration: BOOTSTRAP_API_KEY: must be vb_live_ or vb_test_ followed by 32-96 characters of [A-Za-z0-9]",
    );
    expect(exit.stderr + exit.stdout).not.toContain("short-secret");
  });
});
