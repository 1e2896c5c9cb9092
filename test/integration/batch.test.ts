import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OperationResult } from "../../gen/velobase/billing/v1/billing.js";
import { verifyLedger } from "../../src/operations/verify.js";
import type { PartialOf } from "../../src/client/billing-client.js";
import type { Operation } from "../../gen/velobase/billing/v1/billing.js";
import { expectError } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { holdCustomer, lockingReadWaits, waitFor } from "../support/waiting.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ DB_POOL_SIZE: "16" });
});
afterAll(async () => {
  await s?.stop();
});

type Op = PartialOf<Operation>;
const deposit = (customerId: string, amount: bigint, idempotencyKey = ""): Op => ({
  operation: { $case: "deposit", value: { customerId, amount, idempotencyKey } },
});
const freeze = (customerId: string, transactionId: string, amount: bigint): Op => ({
  operation: { $case: "freeze", value: { customerId, transactionId, amount } },
});
const deduct = (customerId: string, transactionId: string, amount: bigint): Op => ({
  operation: { $case: "deduct", value: { customerId, transactionId, amount } },
});
const consume = (transactionId: string, actualAmount?: bigint): Op => ({
  operation: { $case: "consume", value: { transactionId, ...(actualAmount === undefined ? {} : { actualAmount }) } },
});
const unfreeze = (transactionId: string): Op => ({ operation: { $case: "unfreeze", value: { transactionId } } });

const available = async (customerId: string) => (await s.client.call("getCustomer", { customerId })).balance?.available;
const kinds = (results: OperationResult[]) => results.map((r) => (r.result?.$case === "error" ? r.result.value.code : r.result?.$case));
const deadlockRetries = async () => (await s.app.metrics.retries.get()).values.find((v) => v.labels.reason === "deadlock")?.value ?? 0;
const expectLedgerConsistent = async () => expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);

describe("Batch, atomic", () => {
  it("applies every write in order, each seeing the ones before it", async () => {
    const [a, b] = [uid("cust"), uid("cust")];
    const [t1, t2] = [uid("hold"), uid("ded")];
    const response = await s.client.call("batch", {
      atomic: true,
      operations: [deposit(a, 100n), deposit(b, 50n), freeze(a, t1, 60n), consume(t1, 45n), deduct(b, t2, 50n)],
    });
    expect(response.failedIndex).toBeUndefined();
    expect(kinds(response.results)).toEqual(["deposit", "deposit", "freeze", "consume", "deduct"]);
    const [, , frozen, consumed, deducted] = response.results.map((r) => r.result?.value);
    expect(frozen).toMatchObject({ frozenAmount: 60n, balance: { total: 100n, used: 0n, frozen: 60n, available: 40n } });
    expect(consumed).toMatchObject({
      consumedAmount: 45n,
      returnedAmount: 15n,
      balance: { total: 100n, used: 45n, frozen: 0n, available: 55n },
    });
    expect(deducted).toMatchObject({ deductedAmount: 50n, balance: { total: 50n, used: 50n, frozen: 0n, available: 0n } });
    expect([await available(a), await available(b)]).toEqual([55n, 0n]);
    await expectLedgerConsistent();
  });

  it("creates several accounts of one customer in one write set, each deposit answered with its own account", async () => {
    const a = uid("cust");
    const inDays = (days: number) => ({ seconds: BigInt(Math.floor(Date.now() / 1000) + days * 86_400), nanos: 0 });
    const into = (source: string, amount: bigint, days: number): Op => ({
      operation: { $case: "deposit", value: { customerId: a, amount, source, expiresAt: inDays(days) } },
    });
    const t = uid("ded");
    // Three new accounts, a second deposit into the first (after its id is known), then a spend of the soonest.
    const response = await s.client.call("batch", {
      atomic: true,
      operations: [into("x", 10n, 30), into("y", 20n, 10), into("z", 30n, 20), into("x", 5n, 30), deduct(a, t, 25n)],
    });
    expect(response.failedIndex).toBeUndefined();
    const results = response.results.map((r) => r.result?.value as { account?: { id: bigint; total: bigint; source: string } });
    const accounts = results.slice(0, 4).map((r) => [r.account?.source, r.account?.total]);
    expect(accounts).toEqual([
      ["x", 10n],
      ["y", 20n],
      ["z", 30n],
      ["x", 15n],
    ]);
    const ids = results.slice(0, 4).map((r) => r.account?.id);
    expect(new Set(ids).size).toBe(3);
    expect(ids[3]).toBe(ids[0]);
    expect(results[4]).toMatchObject({ deductedAmount: 25n, balance: { total: 65n, used: 25n, frozen: 0n, available: 40n } });
    const customer = await s.client.call("getCustomer", { customerId: a });
    // Soonest expiry first: y gave 20, then z 5.
    expect(customer.creditTypes[0]?.accounts.map((x) => [x.source, x.total, x.used])).toEqual([
      ["y", 20n, 20n],
      ["z", 30n, 5n],
      ["x", 15n, 0n],
    ]);
    const ledger = await s.client.call("listLedgerEntries", { customerId: a });
    expect(ledger.entries.map((e) => [e.sequence, e.amount, e.balanceAfter?.total])).toEqual([
      [6n, 5n, 65n],
      [5n, 20n, 65n],
      [4n, 5n, 65n],
      [3n, 30n, 60n],
      [2n, 20n, 30n],
      [1n, 10n, 10n],
    ]);
    await expectLedgerConsistent();
  });

  it("writes nothing when one write fails, and names its index and error", async () => {
    const [a, b] = [uid("cust"), uid("cust")];
    await s.client.call("deposit", { customerId: a, amount: 100n });
    const response = await s.client.call("batch", {
      atomic: true,
      operations: [deposit(a, 10n), freeze(a, uid("hold"), 50n), deduct(b, uid("ded"), 1n), deposit(b, 5n)],
    });
    expect(response.results).toEqual([]);
    expect(response.failedIndex).toBe(2);
    expect(response.failedError).toEqual({ code: "customer_not_found", type: "not_found", message: "The customer does not exist." });
    expect(response.failedErrorInfo).toEqual({ reason: "customer_not_found", domain: "billing.velobase", metadata: { customer_id: b } });
    expect(await available(a)).toBe(100n);
    await expectError(s.client.call("getCustomer", { customerId: b }), "customer_not_found");
  });

  it("spends the soonest-expiring credits first when two spends of one customer read different credit types", async () => {
    const a = uid("cust");
    const day = 86_400_000;
    // 20 accounts of type "a" (1 credit each, expiring on days 1..20) and one of type "x" (day 30):
    // more than the 16 a list reads first for each selection.
    for (let d = 1; d <= 20; d++) {
      await s.client.call("deposit", {
        customerId: a,
        amount: 1n,
        creditType: "a",
        expiresAt: { seconds: BigInt((s.clock.now() + d * day) / 1000), nanos: 0 },
      });
    }
    await s.client.call("deposit", {
      customerId: a,
      amount: 100n,
      creditType: "x",
      expiresAt: { seconds: BigInt((s.clock.now() + 30 * day) / 1000), nanos: 0 },
    });
    const response = await s.client.call("batch", {
      atomic: true,
      operations: [
        { operation: { $case: "deduct", value: { customerId: a, transactionId: uid("x"), amount: 1n, creditTypes: ["x"] } } },
        deduct(a, uid("all"), 18n),
      ],
    });
    expect(response.failedIndex).toBeUndefined();
    const all = response.results[1]?.result;
    if (all?.$case !== "deduct") throw new Error(`expected a deduct, got ${all?.$case}`);
    // Days 1..18 of type "a", before the later "x" account the other spend read.
    expect(all.value.details.map((d) => [d.creditType, d.amount])).toEqual(Array.from({ length: 18 }, () => ["a", 1n]));
  });

  it("writes 100 Deducts whose largest metadata escapes to 23 MB in SQL, in statements each under the server's packet limit", async () => {
    const a = uid("cust");
    await s.client.call("deposit", { customerId: a, amount: 1000n });
    // Control characters: each is 6 characters in JSON and 7 escaped into SQL text.
    const metadata = Object.fromEntries(Array.from({ length: 32 }, (_, k) => [`k${k}`, "\u0001".repeat(1024)]));
    const operations: Op[] = Array.from({ length: 100 }, () => ({
      operation: { $case: "deduct", value: { customerId: a, transactionId: uid("big"), amount: 1n, metadata } },
    }));
    const response = await s.client.call("batch", { atomic: true, operations });
    expect(kinds(response.results)).toEqual(Array(100).fill("deduct"));
    expect(await available(a)).toBe(900n);
    const first = response.results[0]?.result;
    const stored = await s.client.call("getTransaction", { transactionId: first?.$case === "deduct" ? first.value.transactionId : "" });
    expect(stored.metadata).toEqual(metadata);
    await expectLedgerConsistent();
  });

  it("names a write that does not parse without running any", async () => {
    const a = uid("cust");
    const response = await s.client.call("batch", { atomic: true, operations: [deposit(a, 10n), deposit(a, 0n)] });
    expect([response.failedIndex, response.failedError?.code]).toEqual([1, "amount_must_be_positive"]);
    await expectError(s.client.call("getCustomer", { customerId: a }), "customer_not_found");
  });
});

describe("Batch, not atomic", () => {
  it("answers each write with its response or its error, in request order", async () => {
    const a = uid("cust");
    const [t1, t2] = [uid("hold"), uid("hold")];
    const response = await s.client.call("batch", {
      atomic: false,
      operations: [
        deposit(a, 100n),
        freeze(a, t1, 70n),
        freeze(a, t2, 70n),
        deduct(uid("nobody"), uid("ded"), 1n),
        unfreeze(t1),
        deposit(a, 0n),
        freeze(a, t2, 70n),
        {},
      ],
    });
    expect(kinds(response.results)).toEqual([
      "deposit",
      "freeze",
      "insufficient_balance",
      "customer_not_found",
      "unfreeze",
      "amount_must_be_positive",
      "freeze",
      "invalid_argument",
    ]);
    expect(response.results[6]?.result?.value).toMatchObject({ balance: { total: 100n, frozen: 70n, available: 30n } });
    // A refused write carries its facts, as the RPC of its kind would in its status details.
    expect(response.results[2]?.errorInfo?.metadata).toMatchObject({ requested: "70", available: "30" });
    expect(response.results[0]?.errorInfo).toBeUndefined();
    expect(await available(a)).toBe(30n);
    await expectLedgerConsistent();
  });

  it("does not keep the customer a refused deposit created", async () => {
    const a = uid("cust");
    const past = { seconds: 1n, nanos: 0 };
    const response = await s.client.call("batch", {
      operations: [{ operation: { $case: "deposit", value: { customerId: a, amount: 5n, expiresAt: past } } }],
    });
    expect(kinds(response.results)).toEqual(["invalid_expires_at"]);
    await expectError(s.client.call("getCustomer", { customerId: a }), "customer_not_found");
  });

  it("refuses more than 100 operations with invalid_argument on operations", async () => {
    const a = uid("cust");
    const info = await expectError(
      s.client.call("batch", { operations: Array.from({ length: 101 }, () => deposit(a, 1n)) }),
      "invalid_argument",
      "A batch holds at most 100 operations.",
    );
    expect(info.field).toBe("operations");
  });
});

describe("Batch and idempotency", () => {
  it("replays each write alone, and the whole batch", async () => {
    const a = uid("cust");
    const [key, t1, t2] = [uid("dep"), uid("hold"), uid("hold")];
    const operations = [deposit(a, 100n, key), freeze(a, t1, 30n), freeze(a, t2, 20n), consume(t1, 10n), unfreeze(t2)];
    const first = await s.client.call("batch", { atomic: true, operations });
    expect(kinds(first.results)).toEqual(["deposit", "freeze", "freeze", "consume", "unfreeze"]);

    const alone = await s.client.call("freeze", { customerId: a, transactionId: t1, amount: 30n });
    expect(alone).toEqual({ ...first.results[1]?.result?.value, isIdempotentReplay: true });
    const depositAlone = await s.client.call("deposit", { customerId: a, amount: 100n, idempotencyKey: key });
    expect(depositAlone).toEqual({ ...first.results[0]?.result?.value, isIdempotentReplay: true });
    const consumeAlone = await s.client.call("consume", { transactionId: t1, actualAmount: 10n });
    expect(consumeAlone).toEqual({ ...first.results[3]?.result?.value, isIdempotentReplay: true });

    const again = await s.client.call("batch", { atomic: true, operations });
    expect(again.results).toEqual(
      first.results.map((r) => ({ result: { ...r.result, value: { ...r.result?.value, isIdempotentReplay: true } } })),
    );
    expect(await available(a)).toBe(90n);
    await expectLedgerConsistent();
  });

  it("refuses a key reused for another request inside one batch, as two calls would", async () => {
    const a = uid("cust");
    const t1 = uid("hold");
    const response = await s.client.call("batch", {
      operations: [deposit(a, 100n), freeze(a, t1, 30n), freeze(a, t1, 30n), freeze(a, t1, 31n), consume(t1), consume(t1, 5n)],
    });
    expect(kinds(response.results)).toEqual([
      "deposit",
      "freeze",
      "freeze",
      "idempotency_conflict",
      "consume",
      "freeze_records_already_consumed",
    ]);
    expect(response.results[2]?.result?.value).toMatchObject({ isIdempotentReplay: true });
  });
});

describe("Batch and locks", () => {
  it("two batches over the same customers in opposite order do not deadlock, and every credit counts", async () => {
    const customers = Array.from({ length: 6 }, () => uid("cust"));
    for (const c of customers) await s.client.call("deposit", { customerId: c, amount: 1000n });
    const forward = customers.map((c) => deduct(c, uid("ded"), 1n));
    const backward = [...customers].reverse().map((c) => deduct(c, uid("ded"), 1n));
    const rounds = 10;
    const deadlocksBefore = await deadlockRetries();
    const calls = Array.from({ length: rounds }, (_, i) =>
      s.client.call("batch", {
        atomic: true,
        operations: (i % 2 === 0 ? forward : backward).map((o) => {
          if (o.operation?.$case !== "deduct") throw new Error("deduct expected");
          return deduct(o.operation.value?.customerId ?? "", uid("ded"), 1n);
        }),
      }),
    );
    const responses = await Promise.all(calls);
    for (const r of responses) expect(r.failedIndex).toBeUndefined();
    // Not even a deadlock detected and retried: the customers are always locked in one order.
    expect(await deadlockRetries()).toBe(deadlocksBefore);
    for (const c of customers) expect(await available(c)).toBe(1000n - BigInt(rounds));
    await expectLedgerConsistent();
  });
});

describe("Batch and other projects", () => {
  it("takes the writes waiting for the gate in turns by project: one project's flood of Batches does not keep another's behind it", async () => {
    // A pool of 4: group commit keeps 2 and reads 2, so writes outside it run one at a time.
    const small = await startTestServer({ DB_POOL_SIZE: "4" });
    try {
      const other = small.clientWith((await small.createKey({ project: await small.createProject() })).key);
      const [flooded, mine] = [uid("cust"), uid("cust")];
      await small.client.call("deposit", { customerId: flooded, amount: 100n });
      await other.call("deposit", { customerId: mine, amount: 100n });
      const order: string[] = [];
      const batchOf = (client: typeof other, customerId: string, name: string) =>
        client.call("batch", { atomic: true, operations: [deduct(customerId, uid("ded"), 1n)] }).then((r) => {
          order.push(name);
          return r.failedIndex;
        });
      const holder = await holdCustomer(small.app.database.pool, flooded);
      const first = batchOf(small.client, flooded, "first");
      await waitFor(() => lockingReadWaits(holder), "the first Batch to hold the gate's place, waiting");
      const flood = [1, 2, 3].map((i) => batchOf(small.client, flooded, `flood${i}`));
      await waitFor(async () => small.app.context.transactionGate?.load().waiting === 3, "the flood to wait at the gate");
      const fromOther = batchOf(other, mine, "other");
      await waitFor(async () => small.app.context.transactionGate?.load().waiting === 4, "the other project's Batch to wait");
      await holder.query("COMMIT");
      holder.release();
      expect(await Promise.all([first, ...flood, fromOther])).toEqual([undefined, undefined, undefined, undefined, undefined]);
      expect(order).toEqual(["first", "flood1", "other", "flood2", "flood3"]);
    } finally {
      await small.stop();
    }
  });
});

describe("Batch and the rate limit", () => {
  it("takes one token per operation: a batch of 5 empties a burst of 5, and the next call is refused", async () => {
    const project = await s.createProject({ ratePerSecond: 1, burst: 5 });
    const client = s.clientWith((await s.createKey({ project })).key);
    const customerId = uid("cust");
    const result = await client.call("batch", { operations: [1n, 2n, 3n, 4n, 5n].map((n) => deposit(customerId, n)), atomic: true });
    expect(kinds(result.results)).toEqual(["deposit", "deposit", "deposit", "deposit", "deposit"]);
    const facts = await expectError(client.call("deposit", { customerId, amount: 1n }), "rate_limit_exceeded");
    expect(facts).toMatchObject({ rate_per_second: "1", burst: "5" });
    const reader = s.clientWith((await s.createKey({ project, scope: "read" })).key);
    expect((await reader.call("getCustomer", { customerId })).balance?.available).toBe(15n);
  });

  it("refuses a batch over 100 operations as such, not as one past the burst", async () => {
    const project = await s.createProject({ ratePerSecond: 1, burst: 5 });
    const client = s.clientWith((await s.createKey({ project })).key);
    const customerId = uid("cust");
    const info = await expectError(
      client.call("batch", { operations: Array.from({ length: 101 }, () => deposit(customerId, 1n)) }),
      "invalid_argument",
      "A batch holds at most 100 operations.",
    );
    expect(info).toMatchObject({ field: "operations", requested: "101", limit: "100" });
  });
});

describe("Batch, not atomic, when a write fails unexpectedly", () => {
  it("answers the call: that write server_error, the others with what they did (they committed)", async () => {
    const [a, b] = [uid("cust"), uid("cust")];
    await s.client.call("deposit", { customerId: a, amount: 100n });
    await s.client.call("deposit", { customerId: b, amount: 100n });
    // b's next ledger entry would take a sequence it already has: its write fails, every time,
    // with an error no plan expects (a duplicate on the ledger's unique index).
    const moveBack = (by: number) =>
      s.app.database.pool.query("UPDATE customers SET ledger_sequence = ledger_sequence + ? WHERE customer_id = ?", [by, b]);
    await moveBack(-1);
    try {
      const response = await s.client.call("batch", { atomic: false, operations: [deposit(a, 5n), deduct(b, uid("ded"), 1n)] });
      expect(kinds(response.results)).toEqual(["deposit", "server_error"]);
      expect(response.results[0]?.result?.value).toMatchObject({ addedAmount: 5n, balance: { available: 105n } });
      // Atomic, the same call writes nothing and fails as a whole.
      await expectError(s.client.call("batch", { atomic: true, operations: [deposit(a, 5n), deduct(b, uid("ded"), 1n)] }), "server_error");
    } finally {
      await moveBack(1);
    }
    expect([await available(a), await available(b)]).toEqual([105n, 100n]);
    await expectLedgerConsistent();
  });
});
