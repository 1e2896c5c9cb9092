import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { PoolStatus } from "../../gen/velobase/billing/v1/slots.js";
import { startApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { fingerprint } from "../../src/domain/fingerprint.js";
import type { PoolResult } from "../../src/domain/slots.js";
import { encodeJson } from "../../src/store/json-codec.js";
import { expectError } from "../support/client.js";
import { databaseMigratedThrough, uniqueDatabaseUrl } from "../support/database.js";
import { slotClientsFor } from "../support/slot-clients.js";

// A database from before Grant and Revoke kept their outcomes in idempotency_outcomes (migrations
// up to 0010) stored them in slot_keys. After the upgrade, a capacity change stored there still
// replays its stored answer, and the same key is still refused for another request.
const LAST_MIGRATION_BEFORE_SLOT_OUTCOMES = 10;
const NOW = Date.UTC(2026, 0, 1);

const db = uniqueDatabaseUrl("vb_upgrade_slot_outcomes");
afterAll(async () => {
  await db.drop();
});

// The fingerprint as the code before the upgrade computed it: the whole input but who sent it and the key.
const grantInput = {
  projectId: 1n,
  customerId: "old-cust",
  wallet: "ip",
  source: "default",
  amount: 5n,
  idempotencyKey: "grant-key",
  description: "plan upgrade",
  apiKeyId: 3n,
};
const grantFingerprint = fingerprint({
  op: "GRANT_CAPACITY",
  ...grantInput,
  projectId: undefined,
  apiKeyId: undefined,
  idempotencyKey: undefined,
});
// What the grant answered then; the pool has grown since (a later grant without a key).
const grantResponse: PoolResult = {
  pool: { poolId: 4n, wallet: "ip", source: "default", capacity: 5n, inUse: 0n, available: 5n, status: "ACTIVE" },
  isIdempotentReplay: false,
};

async function migrateBeforeSlotOutcomes(): Promise<void> {
  const connection = await databaseMigratedThrough(db, LAST_MIGRATION_BEFORE_SLOT_OUTCOMES);
  const at = new Date(NOW);
  try {
    await connection.query(
      `INSERT INTO customers (id, project_id, customer_id, metadata, created_at) VALUES (7, 1, 'old-cust', '{}', ?);
       INSERT INTO slot_pools (id, project_id, customer_pk, wallet, source, capacity, in_use, status, created_at)
         VALUES (4, 1, 7, 'ip', 'default', 8, 0, 'ACTIVE', ?);
       INSERT INTO slot_events (project_id, customer_pk, pool_id, type, wallet, source, amount, idempotency_key, created_at)
         VALUES (1, 7, 4, 'GRANT_CAPACITY', 'ip', 'default', 5, 'grant-key', ?), (1, 7, 4, 'GRANT_CAPACITY', 'ip', 'default', 3, NULL, ?);
       INSERT INTO slot_keys (project_id, idempotency_key, customer_pk, request_fingerprint, response, created_at)
         VALUES (1, 'grant-key', 7, ?, ?, ?);`,
      [at, at, at, at, grantFingerprint, encodeJson(grantResponse), at],
    );
  } finally {
    await connection.end();
  }
}

describe("upgrading a database from before Grant and Revoke used the idempotency envelope", () => {
  it("replays a capacity change stored in slot_keys and refuses its key for other requests as before", async () => {
    await migrateBeforeSlotOutcomes();
    const announced: string[] = [];
    const app = await startApp(
      loadConfig({ DATABASE_URL: db.url, GRPC_HOST: "127.0.0.1", GRPC_PORT: "0", HTTP_PORT: "0", SWEEP_INTERVAL_MS: "0" }),
      { log: pino({ level: "silent" }), announce: (text) => announced.push(text) },
    );
    const clients = slotClientsFor(app.port, announced.join("").trim().split("\n").at(-1) ?? "");
    const { slots } = clients;
    try {
      const { customerId, wallet, amount, idempotencyKey, description } = grantInput;
      const request = { customerId, wallet, amount, idempotencyKey, description };
      const replay = await slots.call("grantCapacity", request);
      expect(replay).toEqual({
        pool: {
          poolId: "4",
          wallet: "ip",
          source: "default",
          capacity: 5n,
          inUse: 0n,
          available: 5n,
          status: PoolStatus.POOL_STATUS_ACTIVE,
        },
        isIdempotentReplay: true,
      });
      await expectError(slots.call("grantCapacity", { ...request, amount: 6n }), "idempotency_conflict");
      await expectError(slots.call("revokeCapacity", request), "idempotency_conflict");
      await expectError(slots.call("grantCapacity", { ...request, customerId: "someone-else" }), "transaction_conflict");
      expect((await slots.call("listPools", { customerId })).pools.map((p) => p.capacity)).toEqual([8n]);

      const revoke = { customerId, wallet, amount: 2n, idempotencyKey: "revoke-key" };
      expect((await slots.call("revokeCapacity", revoke)).pool?.capacity).toBe(6n);
      expect(await slots.call("revokeCapacity", revoke)).toMatchObject({ isIdempotentReplay: true, pool: { capacity: 6n } });

      const [tables] = await app.database.pool.query("SHOW TABLES LIKE 'slot_keys'");
      expect(tables).toEqual([]);
      const [stored] = await app.database.pool.query(
        "SELECT scope, idempotency_key FROM idempotency_outcomes WHERE scope = 'SLOT' ORDER BY idempotency_key",
      );
      expect(stored).toEqual([
        { scope: "SLOT", idempotency_key: "grant-key" },
        { scope: "SLOT", idempotency_key: "revoke-key" },
      ]);
    } finally {
      clients.close();
      await app.stop();
    }
  });
});
