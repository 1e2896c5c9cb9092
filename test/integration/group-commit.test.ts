import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CreditWrite,
  consumeWrite,
  type DepositWrite,
  depositWrite,
  spendWrite,
  unfreezeWrite,
} from "../../src/domain/plans/write-list.js";
import { TransactionGate } from "../../src/operations/transaction-gate.js";
import type { PoolConnection } from "mysql2/promise";
import { GROUP_COMMIT_MAX } from "../../src/domain/limits.js";
import type { ConsumeRequest } from "../../src/domain/requests.js";
import type { Balance } from "../../src/domain/types.js";
import type { BillingContext } from "../../src/operations/context.js";
import { GroupCommit } from "../../src/operations/group-commit.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { BillingError, CallNotRun } from "../../src/errors/billing-error.js";
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

const groups = async () => {
  const metric = await s.app.metrics.groupCommitSize.get();
  const sum = metric.values.find((v) => v.metricName === "billing_group_commit_size_sum")?.value ?? 0;
  const count = metric.values.find((v) => v.metricName === "billing_group_commit_size_count")?.value ?? 0;
  return { calls: sum, groups: count };
};

const request = (customerId: string, amount: bigint) => ({
  projectId: 1n,
  apiKeyId: null,
  customerId,
  transactionId: uid("t"),
  amount,
  creditTypes: [],
  businessType: 0,
  description: "",
  metadata: {},
});

const depositFor = (customerId: string, amount: bigint): CreditWrite =>
  depositWrite({
    ...request(customerId, amount),
    idempotencyKey: null,
    creditType: "default",
    source: "default",
    startsAtMs: null,
    expiresAtMs: null,
    name: "",
    email: "",
  });
const deductOperation = (r: ReturnType<typeof request>): CreditWrite => spendWrite("DEDUCT", { ...r, autoSettlement: null });
const consumeOperation = (r: ConsumeRequest): CreditWrite => consumeWrite(r, { automatic: false });
const SIDE_BY_SIDE = { sideBySide: true };
/** A Deduct the database refuses (a description longer than its column): it fails the transaction it is in. */
const refusedByDatabase = (customerId: string): CreditWrite =>
  deductOperation({ ...request(customerId, 1n), description: "x".repeat(5000) });

describe("per-customer group commit", () => {
  it("applies the calls that queue behind a customer's transaction together, each answered as alone", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 1000n });
    const before = await groups();
    const calls = Array.from({ length: 40 }, (_, i) =>
      s.client.call("freeze", { customerId, transactionId: `${customerId}-h${i}`, amount: 30n }).then(
        (r) => r.frozenAmount,
        () => "refused",
      ),
    );
    const answers = await Promise.all(calls);
    expect(answers.filter((a) => a === 30n)).toHaveLength(33);
    expect(answers.filter((a) => a === "refused")).toHaveLength(7);
    const after = await groups();
    // Some calls waited for a transaction in flight and were applied in groups of more than one.
    expect(after.calls - before.calls).toBeGreaterThan(after.groups - before.groups);
    const c = await s.client.call("getCustomer", { customerId });
    expect(c.balance).toEqual({ total: 1000n, used: 0n, frozen: 990n, available: 10n });
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("lets one call's refusal fail no other call of its group", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const reused = uid("t");
    await s.client.call("deduct", { customerId, transactionId: reused, amount: 1n });
    const before = await groups();
    const outcomes = await Promise.all([
      s.client.call("deduct", { customerId, transactionId: uid("t"), amount: 1n }).then(() => "ok"),
      s.client.call("deduct", { customerId, transactionId: reused, amount: 2n }).catch(() => "refused"),
      s.client.call("deduct", { customerId, transactionId: uid("t"), amount: 500n }).catch(() => "refused"),
      s.client.call("deduct", { customerId, transactionId: uid("t"), amount: 1n }).then(() => "ok"),
      s.client.call("deduct", { customerId, transactionId: reused, amount: 1n }).then((r) => (r.isIdempotentReplay ? "replay" : "fresh")),
    ]);
    expect(outcomes).toEqual(["ok", "refused", "refused", "ok", "replay"]);
    expect((await s.client.call("getCustomer", { customerId })).balance?.available).toBe(97n);
    // The first call ran alone; the four that waited for it went in fewer transactions than calls.
    const after = await groups();
    expect(after.calls - before.calls).toBe(4);
    expect(after.groups - before.groups).toBeLessThan(4);
  });

  it("runs each call alone when the group's transaction fails", async () => {
    const customerId = uid("cust");
    const base: BillingContext = { database: s.app.database, now: s.clock.now };
    const observed = { groups: [] as number[], fallbacks: 0 };
    const commit = new GroupCommit(base, { onGroup: (n) => observed.groups.push(n), onFallback: () => observed.fallbacks++ });
    await commit.run(depositFor(customerId, 100n));
    // A write whose statements the database refuses: it fails its group's transaction.
    const broken = refusedByDatabase(customerId);
    const first = commit.run(spendWrite("FREEZE", { ...request(customerId, 10n), autoSettlement: null }));
    const queued = [
      commit.run(deductOperation(request(customerId, 5n))),
      commit.run(broken),
      commit.run(deductOperation(request(customerId, 7n))),
    ];
    const settled = await Promise.allSettled([first, ...queued]);
    expect(settled.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect(observed).toEqual({ groups: [3], fallbacks: 1 });
    const c = await s.client.call("getCustomer", { customerId });
    expect(c.balance).toEqual({ total: 100n, used: 12n, frozen: 10n, available: 78n });
  });

  it("refuses at once, with rate_limit_exceeded, a call past a customer's full queue, instead of running it alone on a pooled connection", async () => {
    const customerId = uid("cust");
    const base: BillingContext = { database: s.app.database, now: s.clock.now };
    const refusedLines: string[] = [];
    const commit = new GroupCommit(
      base,
      { onOverloaded: (line) => refusedLines.push(line) },
      { transactions: 2, sideBySide: true, queueMax: 2 },
    );
    await commit.run(depositFor(customerId, 100n));
    const holder = await holdCustomer(s.app.database.pool, customerId);
    try {
      const first = commit.run(deductOperation(request(customerId, 1n)));
      const queued = [commit.run(deductOperation(request(customerId, 2n))), commit.run(deductOperation(request(customerId, 3n)))];
      const refused = await commit.run(deductOperation(request(customerId, 4n))).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(BillingError);
      expect([(refused as BillingError).code, (refused as BillingError).message]).toEqual([
        "rate_limit_exceeded",
        "This customer has 2 calls waiting on this instance; retry later.",
      ]);
      // Its wait is drawn from OVERLOAD_RETRY_DELAY_MS, so that the refused callers of a burst spread their retries.
      const { retryDelayMs, facts } = refused as BillingError;
      expect(retryDelayMs).toBeGreaterThanOrEqual(500);
      expect(retryDelayMs).toBeLessThanOrEqual(1500);
      expect(facts).toEqual({ customer_calls_waiting_max: 2, retry_delay_ms: retryDelayMs });
      expect(refusedLines).toEqual(["customer"]);
      await holder.query("COMMIT");
      expect((await Promise.allSettled([first, ...queued])).map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
    } finally {
      holder.release();
    }
    expect((await s.client.call("getCustomer", { customerId })).balance?.used).toBe(6n);
  });

  it("frees a full queue's place at once when a waiting caller leaves, answering it without running", async () => {
    const customerId = uid("cust");
    const base: BillingContext = { database: s.app.database, now: s.clock.now };
    const refusedLines: string[] = [];
    const commit = new GroupCommit(
      base,
      { onOverloaded: (line) => refusedLines.push(line) },
      { transactions: 2, sideBySide: true, queueMax: 2 },
    );
    await commit.run(depositFor(customerId, 100n));
    const holder = await holdCustomer(s.app.database.pool, customerId);
    const leaving = new AbortController();
    let settled: PromiseSettledResult<unknown>[];
    try {
      const first = commit.run(deductOperation(request(customerId, 1n)));
      const left = commit.run(deductOperation(request(customerId, 2n)), leaving.signal);
      const stays = commit.run(deductOperation(request(customerId, 3n)));
      leaving.abort();
      await expect(left).rejects.toBeInstanceOf(CallNotRun);
      const taken = commit.run(deductOperation(request(customerId, 4n)));
      await holder.query("COMMIT");
      settled = await Promise.allSettled([first, stays, taken]);
    } finally {
      holder.release();
    }
    expect(settled.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
    expect((await s.client.call("getCustomer", { customerId })).balance?.used).toBe(8n);
  });

  it("after its group's transaction fails, runs no call again whose caller gave up meanwhile", async () => {
    const customerId = uid("cust");
    const base: BillingContext = { database: s.app.database, now: s.clock.now };
    const gaveUp = new AbortController();
    // The caller leaves once its call left the queue: the group is under way without it.
    const commit = new GroupCommit(base, { onGroup: () => gaveUp.abort() });
    await commit.run(depositFor(customerId, 100n));
    const holder = await holdCustomer(s.app.database.pool, customerId);
    let settled: PromiseSettledResult<unknown>[];
    try {
      const first = commit.run(deductOperation(request(customerId, 1n)));
      const queued = [
        commit.run(deductOperation(request(customerId, 2n)), gaveUp.signal),
        commit.run(refusedByDatabase(customerId)),
        commit.run(deductOperation(request(customerId, 4n))),
      ];
      await holder.query("COMMIT");
      settled = await Promise.allSettled([first, ...queued]);
    } finally {
      holder.release();
    }
    expect(settled.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
    expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(CallNotRun);
    expect((await s.client.call("getCustomer", { customerId })).balance?.used).toBe(5n);
  });

  it("adds nothing for an idle customer: a lone call runs at once, alone", async () => {
    const customerId = uid("cust");
    const base: BillingContext = { database: s.app.database, now: s.clock.now };
    const observed: number[] = [];
    const commit = new GroupCommit(base, { onGroup: (n) => observed.push(n) });
    await expect(commit.run(deductOperation(request(customerId, 5n)))).rejects.toBeInstanceOf(BillingError);
    expect(observed).toEqual([]);
  });
});

describe("group commit across customers (side by side)", () => {
  const freezeOf = (customerId: string, amount: bigint, transactionId = uid("t")): CreditWrite =>
    spendWrite("FREEZE", { ...request(customerId, amount), transactionId, autoSettlement: null });

  /** A group commit with one transaction for the instance, and what it reports. */
  const observedGroupCommit = () => {
    const observed = { sideBySide: [] as number[], setAside: [] as number[], fallbacks: 0, heldWaits: 0 };
    const commit = new GroupCommit(
      { database: s.app.database, now: s.clock.now },
      {
        onSideBySide: (n) => observed.sideBySide.push(n),
        onSetAside: (n) => observed.setAside.push(n),
        onFallback: () => observed.fallbacks++,
        onHeldWait: () => observed.heldWaits++,
      },
      { transactions: 1, ...SIDE_BY_SIDE },
    );
    return { commit, observed };
  };

  it("carries the calls that wait for a busy instance in one transaction, each answered as alone", async () => {
    const base: BillingContext = { database: s.app.database, now: s.clock.now };
    const sideBySide: number[] = [];
    const commit = new GroupCommit(base, { onSideBySide: (n) => sideBySide.push(n) }, { transactions: 1, ...SIDE_BY_SIDE });
    const customers = Array.from({ length: 8 }, () => uid("cust"));
    for (const c of customers) await commit.run(depositFor(c, 100n));
    const [c0, c1, c2, c3, c4, c5, c6, c7] = customers as [string, string, string, string, string, string, string, string];
    const reused = uid("t");
    const first = (await commit.run(freezeOf(c5, 10n, reused))) as { balance: Balance };
    const held = uid("t");
    await commit.run(freezeOf(c6, 20n, held));
    const heldWhole = uid("t");
    await commit.run(freezeOf(c7, 30n, heldWhole));
    const consume = { projectId: 1n, apiKeyId: null, transactionId: held, customerId: null, actualAmount: 5n, allowOverage: false };
    // The first call takes the instance's one transaction; the others wait, then go together.
    const calls = [
      commit.run(freezeOf(c0, 1n)),
      commit.run(freezeOf(c1, 30n)),
      commit.run(freezeOf(c2, 30n)),
      commit.run(freezeOf(c3, 500n)),
      commit.run(deductOperation({ ...request(c4, 40n) })),
      commit.run(freezeOf(c5, 10n, reused)),
      commit.run(freezeOf(c5, 11n, reused)),
      commit.run(consumeOperation(consume)),
      commit.run(consumeOperation({ ...consume, transactionId: heldWhole, customerId: c7, actualAmount: null })),
    ];
    const settled = await Promise.allSettled(calls);
    const answer = (i: number) => {
      const r = settled[i];
      if (r === undefined) return "missing";
      if (r.status === "rejected") return r.reason instanceof BillingError ? r.reason.code : String(r.reason);
      const v = r.value as {
        consumedAmount?: bigint;
        returnedAmount?: bigint;
        amount?: bigint;
        balance: Balance;
        isIdempotentReplay: boolean;
      };
      if (v.consumedAmount !== undefined) return { consumed: v.consumedAmount, returned: v.returnedAmount, balance: v.balance };
      return { amount: v.amount, balance: v.balance, replay: v.isIdempotentReplay };
    };
    const balance = (used: bigint, frozen: bigint) => ({ total: 100n, used, frozen, available: 100n - used - frozen });
    expect(settled.map((_, i) => answer(i))).toEqual([
      { amount: 1n, balance: balance(0n, 1n), replay: false },
      { amount: 30n, balance: balance(0n, 30n), replay: false },
      { amount: 30n, balance: balance(0n, 30n), replay: false },
      "insufficient_balance",
      { amount: 40n, balance: balance(40n, 0n), replay: false },
      { amount: 10n, balance: first.balance, replay: true },
      "idempotency_conflict",
      { consumed: 5n, returned: 15n, balance: balance(5n, 0n) },
      { consumed: 30n, returned: 0n, balance: balance(30n, 0n) },
    ]);
    // One went alone; the first call of each of the seven other customers waited and went side by
    // side in one transaction (one list over seven customers); the second call for c5 queued
    // behind its customer's (group commit).
    expect(sideBySide).toEqual([7]);
    for (const [c, used, frozen] of [
      [c0, 0n, 1n],
      [c1, 0n, 30n],
      [c3, 0n, 0n],
      [c4, 40n, 0n],
      [c5, 0n, 10n],
      [c6, 5n, 0n],
      [c7, 30n, 0n],
    ] as const) {
      expect((await s.client.call("getCustomer", { customerId: c })).balance).toEqual(balance(used, frozen));
    }
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("takes the calls in line in turns by project: one project's burst does not hold another's call back", async () => {
    const { commit, observed } = observedGroupCommit();
    const other = await s.createProject();
    const busy = Array.from({ length: GROUP_COMMIT_MAX + 8 }, () => uid("cust"));
    const mine = uid("cust");
    for (const c of busy) await commit.run(depositFor(c, 10n));
    await commit.run(depositWrite({ ...(depositFor(mine, 10n) as DepositWrite).request, projectId: other.id }));
    const order: string[] = [];
    const answered = (name: string) => (r: unknown) => {
      order.push(name);
      return r;
    };
    // The first call takes the instance's one transaction; the burst and then the other project's call wait in line.
    const calls = busy.map((c, i) => commit.run(freezeOf(c, 1n)).then(answered(`busy${i}`)));
    const fromOther = commit
      .run(spendWrite("FREEZE", { ...request(mine, 2n), projectId: other.id, autoSettlement: null }))
      .then(answered("other")) as Promise<{ balance: Balance }>;
    await Promise.all(calls);
    expect((await fromOther).balance).toEqual({ total: 10n, used: 0n, frozen: 2n, available: 8n });
    // The first list took one call of each project in turn, then the rest of the burst.
    expect(observed.sideBySide).toEqual([GROUP_COMMIT_MAX, 8]);
    expect(order.indexOf("other")).toBeLessThan(order.indexOf(`busy${GROUP_COMMIT_MAX + 1}`));
  });

  it("refuses a project's call past half the line, while another project's still waits in it", async () => {
    const base: BillingContext = { database: s.app.database, now: s.clock.now };
    const commit = new GroupCommit(base, {}, { transactions: 1, waitingMax: 8, ...SIDE_BY_SIDE });
    const other = await s.createProject();
    const busy = Array.from({ length: 6 }, () => uid("cust"));
    const mine = uid("cust");
    for (const c of busy) await commit.run(depositFor(c, 10n));
    await commit.run(depositWrite({ ...(depositFor(mine, 10n) as DepositWrite).request, projectId: other.id }));
    // The first call runs; four more of its project fill its half of the line of 8.
    const calls = busy.map((c) => commit.run(freezeOf(c, 1n)));
    const fromOther = commit.run(spendWrite("FREEZE", { ...request(mine, 2n), projectId: other.id, autoSettlement: null }));
    const settled = await Promise.allSettled([...calls, fromOther]);
    const codes = settled.map((r) =>
      r.status === "fulfilled" ? "ok" : r.reason instanceof BillingError ? r.reason.code : String(r.reason),
    );
    expect(codes).toEqual(["ok", "ok", "ok", "ok", "ok", "rate_limit_exceeded", "ok"]);
    const refusal = (settled[5] as PromiseRejectedResult).reason as BillingError;
    expect(refusal.facts).toMatchObject({ project_calls_waiting_max: 4 });
  });

  it("sets aside a customer another transaction holds, so the rest of its list goes on, and runs it alone when freed", async () => {
    const { commit, observed } = observedGroupCommit();
    const [first, held, a, b, settledHold] = [uid("cust"), uid("cust"), uid("cust"), uid("cust"), uid("cust")];
    for (const customer of [first, held, a, b, settledHold]) await commit.run(depositFor(customer, 100n));
    const hold = uid("t");
    await commit.run(freezeOf(settledHold, 10n, hold));
    // Another instance's transactions, as seen from here: `first` takes this instance's one
    // transaction and waits; `held` stays locked while the list it goes in runs.
    const firstHolder = await holdCustomer(s.app.database.pool, first);
    const heldHolder = await holdCustomer(s.app.database.pool, held);
    const answered: string[] = [];
    const track = <T>(name: string, call: Promise<T>) =>
      call.then(
        (value) => {
          answered.push(name);
          return value;
        },
        (error: unknown) => {
          answered.push(name);
          throw error;
        },
      );
    try {
      const running = track("first", commit.run(freezeOf(first, 1n)));
      await waitFor(() => lockingReadWaits(heldHolder), "the first call to wait on its customer");
      const consume = { projectId: 1n, apiKeyId: null, transactionId: hold, customerId: null, actualAmount: 4n, allowOverage: false };
      const waiting = [
        track("a", commit.run(freezeOf(a, 2n))),
        track("held", commit.run(freezeOf(held, 3n))),
        track("b", commit.run(deductOperation(request(b, 5n)))),
        track("consume", commit.run(consumeOperation(consume))),
      ];
      await firstHolder.query("COMMIT");
      // The list of four goes on without `held`, whose lock is still taken.
      const [fromA, fromB, fromConsume] = (await Promise.all([running, waiting[0], waiting[2], waiting[3]]).then((r) => r.slice(1))) as [
        { amount: bigint; balance: Balance },
        { amount: bigint; balance: Balance },
        { consumedAmount: bigint; returnedAmount: bigint },
      ];
      expect(answered).toEqual(["first", "a", "b", "consume"]);
      expect([fromA.amount, fromA.balance, fromB.amount, fromB.balance, fromConsume.consumedAmount, fromConsume.returnedAmount]).toEqual([
        2n,
        { total: 100n, used: 0n, frozen: 2n, available: 98n },
        5n,
        { total: 100n, used: 5n, frozen: 0n, available: 95n },
        4n,
        6n,
      ]);
      await waitFor(() => lockingReadWaits(heldHolder), "the set-aside call to wait on its customer, alone");
      await heldHolder.query("COMMIT");
      const fromHeld = (await waiting[1]) as { amount: bigint; balance: Balance };
      expect([fromHeld.amount, fromHeld.balance]).toEqual([3n, { total: 100n, used: 0n, frozen: 3n, available: 97n }]);
    } finally {
      firstHolder.release();
      heldHolder.release();
    }
    expect(observed).toEqual({ sideBySide: [4], setAside: [1], fallbacks: 0, heldWaits: 1 });
    expect((await s.client.call("getCustomer", { customerId: held })).balance?.frozen).toBe(3n);
    expect((await s.client.call("getCustomer", { customerId: settledHold })).balance).toEqual({
      total: 100n,
      used: 4n,
      frozen: 0n,
      available: 96n,
    });
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("sets aside a lone call whose customer another transaction holds, freeing its place for the other customers' calls", async () => {
    const { commit, observed } = observedGroupCommit();
    const [held, a, b] = [uid("cust"), uid("cust"), uid("cust")];
    for (const customer of [held, a, b]) await commit.run(depositFor(customer, 100n));
    const holder = await holdCustomer(s.app.database.pool, held);
    try {
      // The instance is idle: the call for `held` takes its one place, alone, and waits.
      let heldAnswered = false;
      const fromHeld = commit.run(freezeOf(held, 3n)).then((r) => {
        heldAnswered = true;
        return r as { amount: bigint; balance: Balance };
      });
      await waitFor(() => lockingReadWaits(holder), "the lone call to wait on its customer");
      const others = [commit.run(freezeOf(a, 1n)), commit.run(deductOperation(request(b, 2n)))];
      const [fromA, fromB] = (await Promise.all(others)) as { amount: bigint; balance: Balance }[];
      expect([fromA?.balance, fromB?.balance, heldAnswered]).toEqual([
        { total: 100n, used: 0n, frozen: 1n, available: 99n },
        { total: 100n, used: 2n, frozen: 0n, available: 98n },
        false,
      ]);
      await holder.query("COMMIT");
      expect((await fromHeld).balance).toEqual({ total: 100n, used: 0n, frozen: 3n, available: 97n });
    } finally {
      holder.release();
    }
    expect([observed.setAside, observed.fallbacks]).toEqual([[1], 0]);
  });

  it("sets a customer known held aside before waiting: settlements naming only their hold pay the bound once, not once a list", async () => {
    const { commit, observed } = observedGroupCommit();
    const [held, other] = [uid("cust"), uid("cust")];
    for (const customer of [held, other]) await commit.run(depositFor(customer, 100n));
    // Frozen through the server: this group commit never saw the holds, so it cannot tell their customer.
    const holds = [uid("t"), uid("t"), uid("t")];
    for (const transactionId of holds) await s.client.call("freeze", { customerId: held, transactionId, amount: 10n });
    const settle = (transactionId: string, actualAmount: bigint) =>
      commit.run(consumeOperation({ projectId: 1n, apiKeyId: null, transactionId, customerId: null, actualAmount, allowOverage: false }));
    const holder = await holdCustomer(s.app.database.pool, held);
    try {
      // The first settlement waits out the bound, then waits apart, on the customer's lock.
      const first = settle(holds[0] as string, 1n);
      await waitFor(async () => observed.setAside.length === 1, "the first settlement to be set aside");
      // The next ones are set aside before they wait: the other customer's call is not held up.
      const next = [settle(holds[1] as string, 2n), settle(holds[2] as string, 3n)];
      const fromOther = (await commit.run(deductOperation(request(other, 4n)))) as { balance: Balance };
      await waitFor(async () => observed.setAside.length === 3, "the next settlements to be set aside");
      expect([fromOther.balance, observed.heldWaits]).toEqual([{ total: 100n, used: 4n, frozen: 0n, available: 96n }, 1]);
      await holder.query("COMMIT");
      const settled = (await Promise.all([first, ...next])) as { consumedAmount: bigint; returnedAmount: bigint }[];
      expect(settled.map((r) => [r.consumedAmount, r.returnedAmount])).toEqual([
        [1n, 9n],
        [2n, 8n],
        [3n, 7n],
      ]);
    } finally {
      holder.release();
    }
    // The third settlement waited in line behind the second and went side by side with the other customer's call.
    expect(observed).toEqual({ sideBySide: [2], setAside: [1, 1, 1], fallbacks: 0, heldWaits: 1 });
    expect((await s.client.call("getCustomer", { customerId: held })).balance).toEqual({
      total: 100n,
      used: 6n,
      frozen: 0n,
      available: 94n,
    });
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("bounds a held customer's calls set aside as its queue is, refusing the next with rate_limit_exceeded", async () => {
    const observed = { setAside: [] as number[] };
    const commit = new GroupCommit(
      { database: s.app.database, now: s.clock.now },
      { onSetAside: (n) => observed.setAside.push(n) },
      { transactions: 1, queueMax: 2, ...SIDE_BY_SIDE },
    );
    const held = uid("cust");
    await commit.run(depositFor(held, 100n));
    const holds = Array.from({ length: 5 }, () => uid("t"));
    for (const transactionId of holds) await s.client.call("freeze", { customerId: held, transactionId, amount: 10n });
    const settle = (transactionId: string) =>
      commit
        .run(consumeOperation({ projectId: 1n, apiKeyId: null, transactionId, customerId: null, actualAmount: 1n, allowOverage: false }))
        .then(
          () => "ok",
          (error: unknown) => (error instanceof BillingError ? error.code : String(error)),
        );
    const holder = await holdCustomer(s.app.database.pool, held);
    const first = settle(holds[0] as string);
    await waitFor(() => lockingReadWaits(holder), "the first settlement to wait apart, on its customer");
    // Known held: the next ones join its line at once, two at most.
    const next = holds.slice(1).map(settle);
    await waitFor(async () => observed.setAside.reduce((a, b) => a + b, 0) === 5, "the next settlements to be set aside");
    const refusedMeanwhile = await Promise.race([Promise.all(next.slice(2)), new Promise((r) => setTimeout(() => r("waiting"), 50))]);
    await holder.query("COMMIT");
    holder.release();
    expect([await first, ...(await Promise.all(next)), refusedMeanwhile]).toEqual([
      "ok",
      "ok",
      "ok",
      "rate_limit_exceeded",
      "rate_limit_exceeded",
      ["rate_limit_exceeded", "rate_limit_exceeded"],
    ]);
  });

  it("answers a call set aside behind a held customer's list as soon as its caller leaves, not when that list ends", async () => {
    const observed = { setAside: [] as number[] };
    const commit = new GroupCommit(
      { database: s.app.database, now: s.clock.now },
      { onSetAside: (n) => observed.setAside.push(n) },
      { transactions: 1, ...SIDE_BY_SIDE },
    );
    const held = uid("cust");
    await commit.run(depositFor(held, 100n));
    // Frozen through the server: this group commit does not know whose hold it is.
    const hold = uid("t");
    await s.client.call("freeze", { customerId: held, transactionId: hold, amount: 10n });
    const answer = (call: Promise<unknown>) =>
      call.then(
        () => "ok",
        (error: unknown) => (error instanceof CallNotRun ? "not run" : error instanceof BillingError ? error.code : String(error)),
      );
    const holder = await holdCustomer(s.app.database.pool, held);
    let first: Promise<string> = Promise.resolve("not sent");
    try {
      first = answer(commit.run(deductOperation(request(held, 1n))));
      await waitFor(async () => observed.setAside.length === 1, "the first call to be set aside");
      // Its customer known held, the settlement is set aside at once, behind the first call's list.
      const leaving = new AbortController();
      const settlement = consumeOperation({
        projectId: 1n,
        apiKeyId: null,
        transactionId: hold,
        customerId: null,
        actualAmount: 1n,
        allowOverage: false,
      });
      const second = answer(commit.run(settlement, leaving.signal));
      await waitFor(async () => observed.setAside.length === 2, "the settlement to be set aside");
      leaving.abort();
      // Answered while the customer is still held and the first call still waits on it.
      expect(await Promise.race([second, first.then(() => "the first call ended first")])).toBe("not run");
    } finally {
      await holder.query("COMMIT");
      holder.release();
    }
    // The first call's list commits once the customer is free; its answer, then the balance it left.
    expect(await first).toBe("ok");
    expect((await s.client.call("getCustomer", { customerId: held })).balance).toMatchObject({ used: 1n, frozen: 10n });
  });

  it("answers a held customer's calls set aside together when their list waited out every lock wait, not each alone again", async () => {
    const short = await startTestServer({ DB_LOCK_WAIT_TIMEOUT_S: "2" });
    try {
      const observed = { setAside: [] as number[], fallbacks: 0, lockWaits: 0 };
      const commit = new GroupCommit(
        {
          database: short.app.database,
          now: short.clock.now,
          retries: { onRetry: (reason) => void (reason === "lock_wait_timeout" && observed.lockWaits++) },
        },
        { onSetAside: (n) => observed.setAside.push(n), onFallback: () => observed.fallbacks++ },
        { transactions: 1, ...SIDE_BY_SIDE },
      );
      const held = uid("cust");
      await commit.run(depositFor(held, 100n));
      const holder = await holdCustomer(short.app.database.pool, held);
      const answer = (call: Promise<unknown>) =>
        call.then(
          () => "ok",
          (error: unknown) => (error instanceof BillingError ? error.code : String(error)),
        );
      const first = answer(commit.run(deductOperation(request(held, 1n))));
      await waitFor(async () => observed.setAside.length === 1, "the first call to be set aside");
      // Known held: these join its line, and go as one list after it.
      const next = [answer(commit.run(deductOperation(request(held, 2n)))), answer(commit.run(deductOperation(request(held, 3n))))];
      const answers = await Promise.all([first, ...next]);
      await holder.query("COMMIT");
      holder.release();
      expect(answers).toEqual(["service_unavailable", "service_unavailable", "service_unavailable"]);
      // Two lists, five attempts each: four lock-wait retries a list, and no call run alone after.
      expect([observed.fallbacks, observed.lockWaits]).toEqual([0, 8]);
      expect((await short.client.call("getCustomer", { customerId: held })).balance?.used).toBe(0n);
    } finally {
      await short.stop();
    }
  }, 120_000);

  it("keeps a customer known held aside on every attempt of a list: a later call never overtakes its calls set aside", async () => {
    const gate = new TransactionGate(1, 100);
    const observed = { setAside: [] as number[], heldWaits: 0 };
    const commit = new GroupCommit(
      { database: s.app.database, now: s.clock.now },
      { onSetAside: (n) => observed.setAside.push(n), onHeldWait: () => observed.heldWaits++ },
      { transactions: 1, gate, ...SIDE_BY_SIDE },
    );
    const [x, y, z] = [uid("cust"), uid("cust"), uid("cust")];
    await commit.run(depositFor(x, 70n));
    for (const c of [y, z]) await commit.run(depositFor(c, 100n));
    const hold = uid("t");
    await s.client.call("freeze", { customerId: x, transactionId: hold, amount: 50n });
    // Another write outside group commit keeps the gate's one place: the calls set aside wait for it.
    let unblock = () => {};
    const blocker = gate.run(() => new Promise<void>((resolve) => (unblock = resolve)), undefined);
    const holders = [await holdCustomer(s.app.database.pool, x)];
    const unfrozen = commit.run(
      unfreezeWrite({ projectId: 1n, apiKeyId: null, transactionId: hold, customerId: null }, { automatic: false }),
    );
    await waitFor(async () => observed.setAside.length === 1, "the unfreeze to be set aside");
    await holders[0]?.query("COMMIT");
    // x is free again, but its unfreeze still waits; y and z are held now.
    holders.push(await holdCustomer(s.app.database.pool, y), await holdCustomer(s.app.database.pool, z));
    const first = commit.run(deductOperation(request(z, 1n)));
    await waitFor(() => lockingReadWaits(holders[2] as PoolConnection), "z's call to wait");
    // Side by side once z's call is set aside: x is known held, and y's wait runs out. The retry
    // locks the others without waiting, and x is free then: it must still keep x's call aside.
    const spent = commit.run(deductOperation(request(x, 60n)));
    const other = commit.run(deductOperation(request(y, 1n)));
    await waitFor(async () => observed.setAside.length === 3, "the side-by-side list to set both calls aside");
    unblock();
    await blocker;
    for (const holder of holders.slice(1)) await holder.query("COMMIT");
    const results = (await Promise.all([unfrozen, spent, other, first])) as { balance: Balance }[];
    expect(results.map((r) => r.balance)).toEqual([
      { total: 70n, used: 0n, frozen: 0n, available: 70n },
      { total: 70n, used: 60n, frozen: 0n, available: 10n },
      { total: 100n, used: 1n, frozen: 0n, available: 99n },
      { total: 100n, used: 1n, frozen: 0n, available: 99n },
    ]);
    for (const holder of holders) holder.release();
    expect([observed.setAside, observed.heldWaits]).toEqual([[1, 1, 2], 3]);
  });

  it("sets aside a first deposit whose customer another transaction is creating, so the rest of its list goes on", async () => {
    const { commit, observed } = observedGroupCommit();
    const [first, a, created] = [uid("cust"), uid("cust"), uid("cust")];
    for (const customer of [first, a]) await commit.run(depositFor(customer, 100n));
    const firstHolder = await holdCustomer(s.app.database.pool, first);
    // Another instance's first deposit of `created`, inserted and not committed yet.
    const creator = await s.app.database.pool.getConnection();
    await creator.query("BEGIN");
    await creator.query("INSERT INTO customers (project_id, customer_id, metadata, created_at) VALUES (1, ?, '{}', NOW(3))", [created]);
    try {
      const running = commit.run(freezeOf(first, 1n));
      await waitFor(() => lockingReadWaits(creator), "the first call to wait on its customer");
      const deposit = commit.run(depositFor(created, 5n));
      let deposited = false;
      void deposit.then(() => (deposited = true));
      const frozen = commit.run(freezeOf(a, 2n));
      await firstHolder.query("COMMIT");
      const [, fromA] = (await Promise.all([running, frozen])) as [unknown, { amount: bigint; balance: Balance }];
      expect([fromA.amount, fromA.balance, deposited]).toEqual([2n, { total: 100n, used: 0n, frozen: 2n, available: 98n }, false]);
      await creator.query("COMMIT");
      expect(((await deposit) as { balance: Balance }).balance).toEqual({ total: 5n, used: 0n, frozen: 0n, available: 5n });
    } finally {
      firstHolder.release();
      creator.release();
    }
    expect([observed.setAside, observed.fallbacks]).toEqual([[1], 0]);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("runs each waiting call alone when their shared transaction fails", async () => {
    const { commit, observed } = observedGroupCommit();
    const [a, b, c] = [uid("cust"), uid("cust"), uid("cust")];
    for (const customer of [a, b, c]) await commit.run(depositFor(customer, 100n));
    // A write the database refuses: it fails the shared transaction.
    const broken = refusedByDatabase(c);
    const busy = commit.run(freezeOf(a, 5n));
    const waiting = [commit.run(freezeOf(a, 7n)), commit.run(broken), commit.run(freezeOf(b, 9n))];
    const settled = await Promise.allSettled([busy, ...waiting]);
    expect(settled.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect(observed).toEqual({ sideBySide: [2], setAside: [], fallbacks: 1, heldWaits: 0 });
    expect((await s.client.call("getCustomer", { customerId: a })).balance?.frozen).toBe(12n);
    expect((await s.client.call("getCustomer", { customerId: b })).balance?.frozen).toBe(9n);
  });

  it("keeps every credit under many customers' calls at once, with two transactions for the instance", async () => {
    const base: BillingContext = { database: s.app.database, now: s.clock.now };
    const commit = new GroupCommit(base, {}, { transactions: 2, ...SIDE_BY_SIDE });
    const customers = Array.from({ length: 8 }, () => uid("cust"));
    for (const c of customers) await commit.run(depositFor(c, 50n));
    // 8 customers × 12 calls of 5, interleaved: 10 fit each customer's 50, 2 are refused.
    const calls = Array.from({ length: 96 }, (_, i) =>
      commit.run(i % 3 === 0 ? deductOperation(request(customers[i % 8] ?? "", 5n)) : freezeOf(customers[i % 8] ?? "", 5n)).then(
        () => "ok",
        (error: unknown) => (error instanceof BillingError ? error.code : String(error)),
      ),
    );
    const answers = await Promise.all(calls);
    expect(answers.filter((a) => a === "ok")).toHaveLength(80);
    expect(answers.filter((a) => a === "insufficient_balance")).toHaveLength(16);
    for (const c of customers) expect((await s.client.call("getCustomer", { customerId: c })).balance?.available).toBe(0n);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });
});
