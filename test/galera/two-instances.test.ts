import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sweepDueHolds } from "../../src/operations/sweeper.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { createLogger } from "../../src/logger.js";
import { openDatabase } from "../../src/store/database.js";
import { type RetryReason, rowsOf, runTransaction } from "../../src/store/run-transaction.js";
import { SECOND, uid } from "../support/fixtures.js";
import { connectTo, type Instance, Instances, nodeUrl, uniqueDatabaseName, untilAnswered } from "./cluster.js";
import { sql } from "../../src/store/sql.js";

const silent = createLogger("silent");

/** Two service instances over one database, A first on node 1 and B first on node 2. */
let instances: Instances;
let a: Instance;
let b: Instance;
beforeAll(async () => {
  instances = new Instances(uniqueDatabaseName());
  a = await instances.start([1, 2, 3]);
  b = await instances.start([2, 3, 1]);
});
afterAll(async () => {
  await instances?.stop();
});

const bothInTurn = (i: number) => (i % 2 === 0 ? a : b);

describe("two instances on two Galera nodes", () => {
  it("64 concurrent Freezes of 30 of one customer against 1000: exactly 33 succeed, 31 insufficient, 10 left", async () => {
    const customerId = uid("hot");
    await a.client.call("deposit", { customerId, amount: 1000n });
    const answers = await Promise.all(
      Array.from({ length: 64 }, (_, i) => {
        const transactionId = uid("hold");
        return untilAnswered(() => bothInTurn(i).client.call("freeze", { customerId, transactionId, amount: 30n }));
      }),
    );
    expect(answers.filter((r) => r.value !== undefined)).toHaveLength(33);
    expect(answers.flatMap((r) => (r.code === undefined ? [] : [r.code]))).toEqual(Array(31).fill("insufficient_balance"));
    for (const instance of [a, b]) {
      const c = await instance.client.call("getCustomer", { customerId });
      expect(c.balance).toEqual({ total: 1000n, used: 0n, frozen: 990n, available: 10n });
    }
    expect((await verifyLedger(b.app.database.db)).problems).toEqual([]);
  });

  it("800 Deducts of one hot customer over both nodes: each acknowledged one counted once, the ledger verifies", async () => {
    const customerId = uid("hot");
    await a.client.call("deposit", { customerId, amount: 1_000_000n });
    let next = 0;
    const codes: string[] = [];
    const worker = async (w: number) => {
      while (next < 800) {
        const transactionId = uid(`deduct${next++}`);
        const answer = await untilAnswered(() => bothInTurn(w).client.call("deduct", { customerId, transactionId, amount: 1n }));
        if (answer.code) codes.push(answer.code);
      }
    };
    await Promise.all(Array.from({ length: 64 }, (_, w) => worker(w)));
    const c = await b.client.call("getCustomer", { customerId });
    const problems = (await verifyLedger(a.app.database.db)).problems;
    expect({ codes, balance: c.balance, problems }).toEqual({
      codes: [],
      balance: { total: 1_000_000n, used: 800n, frozen: 0n, available: 999_200n },
      problems: [],
    });
  });

  it("one idempotency key sent to both at once has one effect, 20 times over", async () => {
    const customerId = uid("cust");
    for (let round = 0; round < 20; round++) {
      const idempotencyKey = uid("dep");
      const both = await Promise.all(
        [a, b].map((instance) => untilAnswered(() => instance.client.call("deposit", { customerId, amount: 7n, idempotencyKey }))),
      );
      expect(both.map((r) => r.code)).toEqual([undefined, undefined]);
      const c = await b.client.call("getCustomer", { customerId });
      expect({ replays: both.map((r) => r.value?.isIdempotentReplay).sort(), total: c.balance?.total }).toEqual({
        replays: [false, true],
        total: BigInt(7 * (round + 1)),
      });
      expect(both[0]?.value?.balance).toEqual({ ...both[1]?.value?.balance });
    }
    const c = await b.client.call("getCustomer", { customerId });
    expect(c.balance).toEqual({ total: 140n, used: 0n, frozen: 0n, available: 140n });
  });

  it("the sweeper on both instances settles each due hold once", async () => {
    const customers = Array.from({ length: 4 }, () => uid("swept"));
    for (const customerId of customers) await a.client.call("deposit", { customerId, amount: 1000n });
    const holds: string[] = [];
    for (let i = 0; i < 40; i++) {
      const transactionId = uid("hold");
      holds.push(transactionId);
      const customerId = customers[Math.floor(i / 10)] as string;
      const due = i % 2 === 0 ? { unfreezeAfterSeconds: 60n } : { consumeAfterSeconds: 60n };
      await bothInTurn(i).client.call("freeze", { customerId, transactionId, amount: 10n, ...due });
    }
    instances.clock.advance(61 * SECOND);
    let settled = 0;
    for (;;) {
      const passes = await Promise.all([sweepDueHolds(a.app.context, silent), sweepDueHolds(b.app.context, silent)]);
      settled += passes[0] + passes[1];
      if (passes[0] + passes[1] === 0) break;
    }
    expect(settled).toBe(40);
    for (const customerId of customers) {
      const c = await b.client.call("getCustomer", { customerId });
      expect(c.balance).toEqual({ total: 1000n, used: 50n, frozen: 0n, available: 950n });
      const ledger = await a.client.call("listLedgerEntries", { customerId });
      expect(ledger.entries.filter((e) => e.automatic)).toHaveLength(10);
    }
    expect((await verifyLedger(a.app.database.db)).problems).toEqual([]);
  });

  it("a read through one node sees the write another node just acknowledged", async () => {
    const customerId = uid("causal");
    for (let i = 1; i <= 50; i++) {
      await a.client.call("deposit", { customerId, amount: 1n });
      const c = await b.client.call("getCustomer", { customerId });
      expect(c.balance?.total).toBe(BigInt(i));
    }
  });

  it("health is SERVING on both", async () => {
    expect(await a.app.database.probe()).toEqual({ ok: true });
    expect(await b.app.database.probe()).toEqual({ ok: true });
  });
});

describe("certification failures", () => {
  it("a write that lost to another node's commit fails at COMMIT with 1213, is counted and retried", async () => {
    const name = uniqueDatabaseName("vb_cert");
    const database = await openDatabase(nodeUrl(1, name), { migrate: false });
    const other = await connectTo(2);
    // Node 2 applies node 1's writes asynchronously: its UPDATE must wait for the row to be there.
    await other.query("SET SESSION wsrep_sync_wait = 15");
    try {
      await database.pool.query("CREATE TABLE counters (id INT PRIMARY KEY, v INT NOT NULL)");
      await database.pool.query("INSERT INTO counters VALUES (1, 0)");
      const reasons: RetryReason[] = [];
      let attempts = 0;
      await runTransaction(
        database,
        async (tx) => {
          attempts++;
          const [locked] = await tx.run([sql`SELECT v FROM counters WHERE id = 1 FOR UPDATE`]);
          const v = Number(rowsOf(locked)[0]?.v);
          // The row is locked on node 1 only: node 2 commits a conflicting write meanwhile.
          if (attempts === 1) {
            const [done] = await other.query(`UPDATE \`${name}\`.counters SET v = v + 100 WHERE id = 1`);
            expect(done).toMatchObject({ affectedRows: 1 });
          }
          await tx.run([sql`UPDATE counters SET v = ${v + 1} WHERE id = 1`], { commit: true });
        },
        { onRetry: (reason) => reasons.push(reason) },
      );
      const [rows] = await database.pool.query("SELECT v FROM counters WHERE id = 1");
      expect({ reasons, attempts, rows }).toEqual({ reasons: ["certification_failure"], attempts: 2, rows: [{ v: 101 }] });
    } finally {
      await other.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await other.end();
      await database.close();
    }
  });
});
