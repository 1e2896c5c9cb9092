import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { startApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { TestClient } from "../support/client.js";
import { databaseMigratedThrough, uniqueDatabaseUrl } from "../support/database.js";

// A database made before keys existed (migrations up to 0004, data in project 1) upgrades in
// place: its data stays in project `default`, and the first start prints a key that reaches it.
const LAST_MIGRATION_BEFORE_KEYS = 4;

const db = uniqueDatabaseUrl("vb_upgrade");
afterAll(async () => {
  await db.drop();
});

async function migrateBeforeKeys(): Promise<void> {
  const connection = await databaseMigratedThrough(db, LAST_MIGRATION_BEFORE_KEYS);
  try {
    await connection.query(
      `INSERT INTO customers (id, project_id, customer_id, metadata, created_at) VALUES (7, 1, 'old-customer', '{}', UTC_TIMESTAMP(3));
       INSERT INTO accounts (id, project_id, customer_pk, credit_type, source, starts_at_ms, expires_at_ms, total, created_at)
         VALUES (9, 1, 7, 'default', 'default', -62135596800000, 253402300800000, 100, UTC_TIMESTAMP(3));
       INSERT INTO ledger_entries (project_id, customer_pk, account_id, operation, amount, credit_type, source, metadata, created_at)
         VALUES (1, 7, 9, 'DEPOSIT', 100, 'default', 'default', '{}', UTC_TIMESTAMP(3));`,
    );
  } finally {
    await connection.end();
  }
}

describe("upgrading a database from before API keys", () => {
  it("keeps its data in project default and prints a first key that reaches it", async () => {
    await migrateBeforeKeys();
    const announced: string[] = [];
    const app = await startApp(
      loadConfig({ DATABASE_URL: db.url, GRPC_HOST: "127.0.0.1", GRPC_PORT: "0", HTTP_PORT: "0", SWEEP_INTERVAL_MS: "0" }),
      {
        log: pino({ level: "silent" }),
        announce: (line) => announced.push(line),
      },
    );
    const key = announced.join("").trim().split("\n").at(-1) ?? "";
    expect(key).toMatch(/^vb_test_[0-9A-Za-z]{40}$/);
    const client = new TestClient(app.port, key);
    try {
      const customer = await client.call("getCustomer", { customerId: "old-customer" });
      expect(customer.balance?.available).toBe(100n);
      const [entry] = (await client.call("listLedgerEntries", { customerId: "old-customer" })).entries;
      expect([entry?.amount, entry?.apiKeyPrefix]).toEqual([100n, ""]);
      const [projects] = await app.database.pool.query("SELECT id, name, mode, rate_per_second, burst FROM projects");
      expect(projects).toEqual([{ id: "1", name: "default", mode: "test", rate_per_second: 5000, burst: 10000 }]);
    } finally {
      client.close();
      await app.stop();
    }
  });
});
