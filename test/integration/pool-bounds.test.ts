import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestClient } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { holdCustomer, lockingReadWaits, waitFor } from "../support/waiting.js";

// Writes that wait on one hot customer's row never hold the whole pool: Batches (outside group
// commit) wait in the TransactionGate's line once DB_POOL_SIZE - GROUP_COMMIT_TRANSACTIONS - 2 of
// them run; settlements of holds this instance did not see frozen wait in group commit's line.
// Another customer's calls go on meanwhile.
let s: TestServer;
beforeAll(async () => {
  // A gate of one: 4 connections, 1 for group commit, 2 kept for reads.
  s = await startTestServer({ DB_POOL_SIZE: "4", GROUP_COMMIT_TRANSACTIONS: "1" });
});
afterAll(async () => {
  await s?.stop();
});

const waitingIn = async (line: string): Promise<number> => {
  const text = await s.app.metrics.registry.getSingleMetricAsString("billing_group_commit_waiting");
  return Number(new RegExp(`line="${line}"} (\\d+)`).exec(text)?.[1] ?? Number.NaN);
};

describe("a hot customer's waiting writes and the pool", () => {
  it("keeps Batches past the gate waiting in memory, while another customer's calls go through", async () => {
    const [hot, cold] = [uid("hot"), uid("cold")];
    for (const customerId of [hot, cold]) await s.client.call("deposit", { customerId, amount: 1000n });
    const holder = await holdCustomer(s.app.database.pool, hot);
    let batches: Promise<unknown>[] = [];
    try {
      batches = Array.from({ length: 6 }, (_, i) =>
        s.client.call("batch", {
          operations: [{ operation: { $case: "freeze", value: { customerId: hot, transactionId: `${hot}-b${i}`, amount: 10n } } }],
        }),
      );
      await waitFor(() => lockingReadWaits(holder), "a batch to wait on the hot customer's row");
      await waitFor(async () => (await waitingIn("outside")) === 5, "five batches in the gate's line");
      // The pool still has connections for the cold customer's calls.
      expect((await s.client.call("freeze", { customerId: cold, transactionId: `${cold}-f`, amount: 5n })).frozenAmount).toBe(5n);
      expect((await s.client.call("getCustomer", { customerId: cold })).balance?.frozen).toBe(5n);
      await holder.query("COMMIT");
    } finally {
      holder.release();
    }
    await Promise.all(batches);
    expect((await s.client.call("getCustomer", { customerId: hot })).balance?.frozen).toBe(60n);
    expect(await waitingIn("outside")).toBe(0);
  });

  it("puts settlements of holds frozen through another instance in line, not each on a connection of its own", async () => {
    const hot = uid("hot");
    await s.client.call("deposit", { customerId: hot, amount: 1000n });
    const other = await s.startAnotherInstance();
    const elsewhere = new TestClient(other.port, s.apiKey);
    const holds = [1, 2, 3].map((i) => `${hot}-h${i}`);
    for (const transactionId of holds) await elsewhere.call("freeze", { customerId: hot, transactionId, amount: 10n });
    elsewhere.close();
    const holder = await holdCustomer(s.app.database.pool, hot);
    let consumes: Promise<unknown>[] = [];
    try {
      // Naming only their holds, which this instance never saw frozen.
      consumes = holds.map((transactionId) => s.client.call("consume", { transactionId, actualAmount: 4n }));
      await waitFor(() => lockingReadWaits(holder), "a settlement to wait on the hot customer's row");
      await waitFor(async () => (await waitingIn("side_by_side")) === 2, "two settlements in line");
      await holder.query("COMMIT");
    } finally {
      holder.release();
    }
    await Promise.all(consumes);
    expect((await s.client.call("getCustomer", { customerId: hot })).balance).toEqual({
      total: 1000n,
      used: 12n,
      frozen: 0n,
      available: 988n,
    });
  });
});
