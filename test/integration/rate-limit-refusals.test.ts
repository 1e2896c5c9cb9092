import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError, type TestClient } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

// A refused call takes nothing from its key's limit, and a Batch that can never fit is told so.
let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ REDIS_URL: process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379", RATE_LIMIT_KEY_PREFIX: prefix() });
});
afterAll(async () => s?.stop());

function prefix(): string {
  return `vb-test:${Date.now().toString(36)}:${randomBytes(4).toString("hex")}`;
}

async function limitedClient(ratePerSecond: number, burst: number): Promise<TestClient> {
  const project = await s.createProject({ ratePerSecond, burst });
  return s.clientWith((await s.createKey({ project })).key);
}

const deposits = (count: number) => {
  const customerId = uid("rl");
  return Array.from({ length: count }, () => ({ operation: { $case: "deposit" as const, value: { customerId, amount: 1n } } }));
};
const admitted = (client: TestClient) => expectError(client.call("getCustomer", { customerId: "nobody" }), "customer_not_found");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a call the rate limit refuses", () => {
  it("takes no tokens: after a refused Batch, every call still left passes", async () => {
    // rate 1, burst 100: the long window holds 101 calls for 101 s, so it is the one that binds.
    const client = await limitedClient(1, 100);
    expect((await client.call("batch", { operations: deposits(95) })).results).toHaveLength(95);
    await sleep(1100); // the one-second window has renewed; the long one holds 95 of 101
    await expectError(client.call("batch", { operations: deposits(10) }), "rate_limit_exceeded", undefined, { messageFree: true });
    for (let i = 0; i < 6; i += 1) await admitted(client);
    await expectError(client.call("getCustomer", { customerId: "nobody" }), "rate_limit_exceeded", undefined, { messageFree: true });
  });
});

describe("a Batch larger than the burst", () => {
  it("is invalid_argument naming the burst (never retryable), and spends nothing", async () => {
    const client = await limitedClient(5, 10);
    const facts = await expectError(
      client.call("batch", { operations: deposits(11) }),
      "invalid_argument",
      "This batch holds 11 writes; this key's rate limit admits at most 10 (its burst) in one call.",
    );
    expect(facts).toEqual({ field: "operations", burst: "10" });
    expect((await client.call("batch", { operations: deposits(10) })).results).toHaveLength(10);
  });
});
