import { Metadata } from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { OperationType, TransactionStatus } from "../../gen/velobase/billing/v1/billing.js";
import { sweepDueHolds } from "../../src/operations/sweeper.js";
import { generateApiKey } from "../../src/domain/api-key.js";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { apiKeys } from "../../src/store/schema.js";
import { Authenticator, LAST_USED_INTERVAL_MS } from "../../src/tenancy/authenticator.js";
import type { ProjectRow } from "../../src/store/projects-store.js";
import type { CreatedApiKey } from "../../src/tenancy/api-keys.js";
import { expectError, type TestClient } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { waitFor } from "../support/waiting.js";

// Keys on a real server through a real client: each auth code, scopes, revocation within the
// cache window, project isolation, and the key recorded on every write.
const CACHE_TTL_MS = 300;

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ API_KEY_CACHE_TTL_MS: String(CACHE_TTL_MS) });
});
afterAll(async () => {
  await s?.stop();
});

const withHeader = (name: string, value: string) => {
  const metadata = new Metadata();
  metadata.set(name, value);
  return metadata;
};

describe("authentication", () => {
  it("answers missing_api_key to a call without a key", async () => {
    const anonymous = s.clientWith(null);
    await expectError(anonymous.call("getCustomer", { customerId: "anyone" }), "missing_api_key");
    await expectError(anonymous.call("deposit", { customerId: "anyone", amount: 1n }), "missing_api_key");
  });

  it("answers invalid_api_key to malformed and unknown keys, and to another scheme", async () => {
    await expectError(s.clientWith("not-a-key").call("getCustomer", { customerId: "a" }), "invalid_api_key");
    await expectError(s.clientWith(`vb_prod_${"a".repeat(40)}`).call("getCustomer", { customerId: "a" }), "invalid_api_key");
    await expectError(s.clientWith(generateApiKey("test")).call("getCustomer", { customerId: "a" }), "invalid_api_key");
    await expectError(s.clientWith(generateApiKey("live")).call("getCustomer", { customerId: "a" }), "invalid_api_key");
    const anonymous = s.clientWith(null);
    await expectError(
      anonymous.call("getCustomer", { customerId: "a" }, withHeader("authorization", `Basic ${s.apiKey}`)),
      "invalid_api_key",
    );
  });

  it("accepts the key as Bearer token or as x-api-key", async () => {
    const anonymous = s.clientWith(null);
    const customerId = uid("header");
    await anonymous.call("deposit", { customerId, amount: 5n }, withHeader("x-api-key", s.apiKey));
    const viaBearer = await anonymous.call("getCustomer", { customerId }, withHeader("authorization", `bearer ${s.apiKey}`));
    expect(viaBearer.balance?.available).toBe(5n);
  });

  it("refuses a revoked key with api_key_revoked within the cache window", async () => {
    const key = await s.createKey({ label: "to revoke" });
    const client = s.clientWith(key.key);
    await expectError(client.call("getCustomer", { customerId: "nobody" }), "customer_not_found");
    await s.revokeKey(key.prefix);
    // Bounded by the cache's window (and a margin for the calls themselves): the poll fails past it.
    const codeNow = () =>
      client.call("getCustomer", { customerId: "nobody" }).then(
        () => "ok",
        (e: { metadata: Metadata }) => decodeStatusDetails(e.metadata).detail?.code,
      );
    await expect.poll(codeNow, { timeout: CACHE_TTL_MS + 2_000, interval: 50 }).toBe("api_key_revoked");
    await expectError(client.call("getCustomer", { customerId: "nobody" }), "api_key_revoked");
  });

  /** The key's last_used_at in ms (null: never). */
  const lastUsedOf = async (prefix: string): Promise<number | null> => {
    const [rows] = await s.app.database.pool.query("SELECT last_used_at FROM api_keys WHERE prefix = ?", [prefix]);
    return (rows as Array<{ last_used_at: Date | null }>)[0]?.last_used_at?.getTime() ?? null;
  };

  /**
   * Counts the writes of last_used_at `database` begins: touchApiKey calls db.update(api_keys) at
   * once, inside the authentication, so the count is exact as soon as the call is answered.
   */
  const countedTouches = (database: TestServer["app"]["database"]) => {
    const update = vi.spyOn(database.db, "update");
    return {
      count: () => update.mock.calls.filter(([table]) => table === apiKeys).length,
      restore: () => update.mockRestore(),
    };
  };

  it("records a key's last use on its first call, and writes nothing for the next ones", async () => {
    const key = await s.createKey({ label: "last used" });
    const client = s.clientWith(key.key);
    expect(await lastUsedOf(key.prefix)).toBeNull();
    const touches = countedTouches(s.app.database);
    try {
      const before = Date.now();
      await expectError(client.call("getCustomer", { customerId: "nobody" }), "customer_not_found");
      const after = Date.now();
      expect(touches.count()).toBe(1);
      await waitFor(async () => (await lastUsedOf(key.prefix)) !== null, "the key's last use to be written");
      const first = (await lastUsedOf(key.prefix)) ?? 0;
      // The time of the call (the server's wall clock, read while authenticating it).
      expect(first >= before && first <= after, `${first} within [${before}, ${after}]`).toBe(true);
      for (let i = 0; i < 5; i++) await expectError(client.call("getCustomer", { customerId: "nobody" }), "customer_not_found");
      expect(touches.count()).toBe(1);
      expect(await lastUsedOf(key.prefix)).toBe(first);
    } finally {
      touches.restore();
    }
  });

  it(`writes a key's last use at most once per ${LAST_USED_INTERVAL_MS} ms: again on the first call that far after the last write`, async () => {
    const key = await s.createKey({ label: "last used, by the clock" });
    // The server's Authenticator follows the wall clock; this one, over the same database, a clock moved by hand.
    let nowMs = Date.UTC(2030, 0, 1);
    const auth = new Authenticator(s.app.database, { cacheTtlMs: 5_000, log: pino({ level: "silent" }), now: () => nowMs });
    const touches = countedTouches(s.app.database);
    try {
      const start = nowMs;
      await auth.authenticate(key.key);
      expect(touches.count()).toBe(1);
      await waitFor(async () => (await lastUsedOf(key.prefix)) === start, "the first use to be written");
      for (const later of [1, LAST_USED_INTERVAL_MS / 2, LAST_USED_INTERVAL_MS - 1]) {
        nowMs = start + later;
        await auth.authenticate(key.key);
      }
      expect(touches.count()).toBe(1);
      expect(await lastUsedOf(key.prefix)).toBe(start);
      nowMs = start + LAST_USED_INTERVAL_MS;
      await auth.authenticate(key.key);
      expect(touches.count()).toBe(2);
      await waitFor(async () => (await lastUsedOf(key.prefix)) === start + LAST_USED_INTERVAL_MS, "the next use to be written");
    } finally {
      touches.restore();
    }
  });
});

describe("scopes", () => {
  it("lets a read key read and answers permission_denied to every write", async () => {
    const customerId = uid("scoped");
    const hold = uid("hold");
    await s.client.call("deposit", { customerId, amount: 100n });
    await s.client.call("freeze", { customerId, transactionId: hold, amount: 10n });
    const reader = s.clientWith((await s.createKey({ scope: "read" })).key);

    expect((await reader.call("getCustomer", { customerId })).balance?.available).toBe(90n);
    expect((await reader.call("getTransaction", { transactionId: hold })).amount).toBe(10n);
    expect((await reader.call("listLedgerEntries", { customerId })).entries).toHaveLength(2);

    const metadata = await expectError(reader.call("deposit", { customerId, amount: 1n }), "permission_denied");
    expect(metadata).toEqual({ required_scope: "write" });
    await expectError(reader.call("deduct", { customerId, transactionId: uid("d"), amount: 1n }), "permission_denied");
    await expectError(reader.call("freeze", { customerId, transactionId: uid("f"), amount: 1n }), "permission_denied");
    await expectError(reader.call("consume", { transactionId: hold }), "permission_denied");
    await expectError(reader.call("unfreeze", { transactionId: hold }), "permission_denied");
    expect((await s.client.call("getCustomer", { customerId })).balance?.available).toBe(90n);
  });
});

describe("isolation between projects", () => {
  let projectB: ProjectRow;
  let b: TestClient;
  beforeAll(async () => {
    projectB = await s.createProject();
    b = s.clientWith((await s.createKey({ project: projectB })).key);
  });

  it("keeps two customers and two holds apart when they share ids", async () => {
    const customerId = uid("shared");
    const hold = uid("shared-hold");
    const a = s.client;
    await a.call("deposit", { customerId, amount: 500n, name: "Alice of A" });
    await b.call("deposit", { customerId, amount: 70n, name: "Bob of B" });
    await a.call("freeze", { customerId, transactionId: hold, amount: 200n });
    await b.call("freeze", { customerId, transactionId: hold, amount: 20n });

    const consumed = await a.call("consume", { transactionId: hold, actualAmount: 150n });
    expect(consumed.balance).toEqual({ total: 500n, used: 150n, frozen: 0n, available: 350n });
    const unfrozen = await b.call("unfreeze", { transactionId: hold });
    expect(unfrozen.balance).toEqual({ total: 70n, used: 0n, frozen: 0n, available: 70n });

    const customerA = await a.call("getCustomer", { customerId });
    const customerB = await b.call("getCustomer", { customerId });
    expect([customerA.name, customerA.balance?.available]).toEqual(["Alice of A", 350n]);
    expect([customerB.name, customerB.balance?.available]).toEqual(["Bob of B", 70n]);
    expect((await a.call("getTransaction", { transactionId: hold })).consumedAmount).toBe(150n);
    expect((await b.call("getTransaction", { transactionId: hold })).status).toBe(TransactionStatus.TRANSACTION_STATUS_UNFROZEN);
    expect((await a.call("listLedgerEntries", { customerId })).entries.map((e) => e.amount)).toEqual([50n, 150n, 200n, 500n]);
    expect((await b.call("listLedgerEntries", { customerId })).entries.map((e) => e.amount)).toEqual([20n, 20n, 70n]);
  });

  it("never lets a key of one project read, list, consume or unfreeze the other's", async () => {
    const victim = uid("victim");
    const hold = uid("victim-hold");
    const other = uid("victim-hold2");
    await s.client.call("deposit", { customerId: victim, amount: 500n, email: "victim@example.com" });
    await s.client.call("freeze", { customerId: victim, transactionId: hold, amount: 100n });
    await s.client.call("freeze", { customerId: victim, transactionId: other, amount: 100n });

    await expectError(b.call("getCustomer", { customerId: victim }), "customer_not_found");
    await expectError(b.call("listLedgerEntries", { customerId: victim }), "customer_not_found");
    await expectError(b.call("getTransaction", { transactionId: hold }), "transaction_not_found");
    await expectError(b.call("consume", { transactionId: hold, actualAmount: 500n, allowOverage: true }), "no_consumable_freeze_records");
    await expectError(b.call("consume", { transactionId: hold, customerId: victim }), "no_consumable_freeze_records");
    await expectError(b.call("unfreeze", { transactionId: other }), "no_unfreezable_records");
    await expectError(b.call("deduct", { customerId: victim, transactionId: uid("steal"), amount: 1n }), "customer_not_found");

    const after = await s.client.call("getCustomer", { customerId: victim });
    expect(after.balance).toEqual({ total: 500n, used: 0n, frozen: 200n, available: 300n });
    expect((await s.client.call("getTransaction", { transactionId: hold })).status).toBe(TransactionStatus.TRANSACTION_STATUS_FROZEN);
  });
});

describe("audit", () => {
  let writer: CreatedApiKey;
  let settler: CreatedApiKey;
  beforeAll(async () => {
    writer = await s.createKey({ label: "writer" });
    settler = await s.createKey({ label: "settler" });
  });

  it("shows the prefix of the key that made a transaction and each ledger entry", async () => {
    const customerId = uid("audit");
    const hold = uid("audit-hold");
    const w = s.clientWith(writer.key);
    await s.client.call("deposit", { customerId, amount: 100n });
    await w.call("freeze", { customerId, transactionId: hold, amount: 40n });
    await s.clientWith(settler.key).call("consume", { transactionId: hold, actualAmount: 30n });

    expect((await w.call("getTransaction", { transactionId: hold })).apiKeyPrefix).toBe(writer.prefix);
    const entries = (await w.call("listLedgerEntries", { customerId })).entries;
    expect(entries.map((e) => [e.operation, e.apiKeyPrefix])).toEqual([
      [OperationType.OPERATION_TYPE_UNFREEZE, settler.prefix],
      [OperationType.OPERATION_TYPE_CONSUME, settler.prefix],
      [OperationType.OPERATION_TYPE_FREEZE, writer.prefix],
      [OperationType.OPERATION_TYPE_DEPOSIT, s.apiKey.slice(0, 16)],
    ]);
  });

  it("shows no key on entries the sweeper writes", async () => {
    const customerId = uid("swept");
    const hold = uid("swept-hold");
    await s.client.call("deposit", { customerId, amount: 100n });
    await s.clientWith(writer.key).call("freeze", { customerId, transactionId: hold, amount: 40n, unfreezeAfterSeconds: 1n });
    s.clock.advance(2_000);
    expect(await sweepDueHolds(s.app.context, pino({ level: "silent" }))).toBe(1);
    const [latest] = (await s.client.call("listLedgerEntries", { customerId })).entries;
    expect([latest?.operation, latest?.automatic, latest?.apiKeyPrefix]).toEqual([OperationType.OPERATION_TYPE_UNFREEZE, true, ""]);
  });

  it("replays a retry sent with another key of the same project", async () => {
    const customerId = uid("replay");
    await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("replay-tx");
    const first = await s.clientWith(writer.key).call("deduct", { customerId, transactionId, amount: 10n });
    const retry = await s.clientWith(settler.key).call("deduct", { customerId, transactionId, amount: 10n });
    expect(retry).toEqual({ ...first, isIdempotentReplay: true });
  });
});
