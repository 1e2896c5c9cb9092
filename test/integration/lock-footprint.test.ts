import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import { TestClient } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Two instances on one database, writing to disjoint and shared customers at once: lists of
// different customers must lock only their own customers' rows. A locking read that scanned a
// table (MariaDB chose a join buffer over a small `accounts` for the ranked spendable accounts)
// locked every customer's accounts, and the two instances' lists deadlocked on 3 % of calls.

const CUSTOMERS = 50;
const CALLS = 3_000;
const IN_FLIGHT = 64;
const FUNDS = 1_000_000n;

let s: TestServer;
let other: App;
let clients: TestClient[];

beforeAll(async () => {
  s = await startTestServer();
  other = await s.startAnotherInstance();
  clients = [s.client, new TestClient(other.port, s.apiKey)];
});

afterAll(async () => {
  clients?.[1]?.close();
  await s?.stop();
});

const deadlockRetries = async (app: App) =>
  (await app.metrics.retries.get()).values.find((v) => v.labels.reason === "deadlock")?.value ?? 0;

describe("two instances writing to many customers at once", () => {
  it(`${CALLS} Deducts and deposits over ${CUSTOMERS} customers: every one applied once, and not one deadlock`, async () => {
    const customers = Array.from({ length: CUSTOMERS }, () => uid("lf"));
    for (const customerId of customers) await s.client.call("deposit", { customerId, amount: FUNDS });
    const before = (await Promise.all([s.app, other].map(deadlockRetries))).reduce((a, b) => a + b, 0);
    const expected = new Map(customers.map((c) => [c, { total: FUNDS, used: 0n }]));
    const calls = Array.from({ length: CALLS }, (_, i) => {
      const customerId = customers[i % CUSTOMERS] as string;
      const client = clients[i % 2] as TestClient;
      const sums = expected.get(customerId) ?? { total: 0n, used: 0n };
      // One call in ten a deposit without a key: a new credit to the customer's account.
      if (i % 10 === 0) {
        sums.total += 5n;
        return () => client.call("deposit", { customerId, amount: 5n });
      }
      sums.used += 1n;
      return () => client.call("deduct", { customerId, transactionId: uid("lf-d"), amount: 1n });
    });
    let next = 0;
    const failures: unknown[] = [];
    const worker = async () => {
      while (next < calls.length) {
        const call = calls[next++];
        await call?.().catch((error: unknown) => failures.push(error));
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    expect(failures).toEqual([]);
    for (const customerId of customers) {
      const sums = expected.get(customerId) ?? { total: 0n, used: 0n };
      expect({ customerId, balance: (await s.client.call("getCustomer", { customerId })).balance }).toEqual({
        customerId,
        balance: { total: sums.total, used: sums.used, frozen: 0n, available: sums.total - sums.used },
      });
    }
    const after = (await Promise.all([s.app, other].map(deadlockRetries))).reduce((a, b) => a + b, 0);
    expect(after - before).toBe(0);
  });
});
