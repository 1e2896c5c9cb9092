import { Metadata } from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OperationType, TransactionStatus } from "../../gen/velobase/billing/v1/billing.js";
import { sweepDueHolds } from "../../src/operations/sweeper.js";
import { generateApiKey } from "../../src/domain/api-key.js";
import type { ProjectRow } from "../../src/store/projects-store.js";
import type { CreatedApiKey } from "../../src/tenancy/api-keys.js";
import { expectError, type TestClient } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

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
    const revokedAt = Date.now();
    await s.revokeKey(key.prefix);
    await expect
      .poll(async () => client.call("getCustomer", { customerId: "nobody" }).catch((e: unknown) => e), {
        timeout: CACHE_TTL_MS + 2_000,
        interval: 50,
      })
      .toSatisfy((e) => (e as { details?: string }).details === "The API key has been revoked.");
    await expectError(client.call("getCustomer", { customerId: "nobody" }), "api_key_revoked");
    expect(Date.now() - revokedAt).toBeLessThan(CACHE_TTL_MS + 2_000);
  });

  it("records a key's last use without a write per call", async () => {
    const key = await s.createKey({ label: "last used" });
    const client = s.clientWith(key.key);
    const lastUsed = async () => {
      const [rows] = await s.app.database.pool.query("SELECT last_used_at FROM api_keys WHERE prefix = ?", [key.prefix]);
      return (rows as Array<{ last_used_at: Date | null }>)[0]?.last_used_at ?? null;
    };
    expect(await lastUsed()).toBeNull();
    await expectError(client.call("getCustomer", { customerId: "nobody" }), "customer_not_found");
    await expect.poll(lastUsed).not.toBeNull();
    const first = await lastUsed();
    for (let i = 0; i < 5; i++) await expectError(client.call("getCustomer", { customerId: "nobody" }), "customer_not_found");
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await lastUsed()).toEqual(first);
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
