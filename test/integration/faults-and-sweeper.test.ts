import { setTimeout as sleep } from "node:timers/promises";
import { credentials, loadPackageDefinition, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import type { RowDataPacket } from "mysql2/promise";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OperationType, TransactionStatus } from "../../gen/velobase/billing/v1/billing.js";
import { EXPIRY_BATCH_SIZE, recordExpiries, recordExpiriesFrom } from "../../src/operations/expiry.js";
import {
  overdueSettlements,
  startSweeper,
  SWEEP_BATCH_SIZE,
  sweep,
  sweepDueHolds,
  sweepDueHoldsFrom,
} from "../../src/operations/sweeper.js";
import { SWEEP_IN_LINE_OVERDUE_MS } from "../../src/operations/overdue-settlements.js";
import { listDueHolds, postponeAutoSettlement } from "../../src/store/transactions-store.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { expectError, TestClient } from "../support/client.js";
import { SECOND, ts, uid } from "../support/fixtures.js";
import { consoleSession } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { ROOT } from "../support/spawn.js";
import { TcpProxy } from "../support/tcp-proxy.js";
import { holdCustomer, lockingReadWaits, waitFor } from "../support/waiting.js";
import { countedTransactions } from "../support/counted-transactions.js";
import { TestWatcher } from "../support/events.js";
import { uniqueDatabaseUrl } from "../support/database.js";

const silent = pino({ level: "silent" });

describe("auto-settlement sweeper", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s?.stop();
  });

  it("unfreezes and consumes due holds once, marking entries automatic", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 1000n });
    const toUnfreeze = uid("hold");
    const toConsume = uid("hold");
    const f = await s.client.call("freeze", { customerId, transactionId: toUnfreeze, amount: 100n, unfreezeAfterSeconds: 60n });
    expect(f.unfreezeAt?.seconds).toBe(BigInt((s.clock.now() + 60 * SECOND) / 1000));
    await s.client.call("freeze", { customerId, transactionId: toConsume, amount: 200n, consumeAfterSeconds: 30n });
    expect(await sweepDueHolds(s.app.context, silent)).toBe(0);
    s.clock.advance(30 * SECOND);
    expect(await sweepDueHolds(s.app.context, silent)).toBe(1);
    s.clock.advance(30 * SECOND);
    expect(await sweepDueHolds(s.app.context, silent)).toBe(1);
    expect(await sweepDueHolds(s.app.context, silent)).toBe(0);

    await expectError(s.client.call("consume", { transactionId: toUnfreeze }), "freeze_auto_unfrozen");
    const replay = await s.client.call("consume", { transactionId: toConsume });
    expect(replay).toMatchObject({ consumedAmount: 200n, isIdempotentReplay: true });
    const t = await s.client.call("getTransaction", { transactionId: toConsume });
    expect(t.settledAutomatically).toBe(true);
    const ledger = await s.client.call("listLedgerEntries", { customerId });
    expect(ledger.entries.filter((e) => e.automatic).map((e) => [e.transactionId, e.amount])).toEqual([
      [toUnfreeze, 100n],
      [toConsume, 200n],
    ]);
    const c = await s.client.call("getCustomer", { customerId });
    expect(c.balance).toEqual({ total: 1000n, used: 200n, frozen: 0n, available: 800n });
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("records once what was left in an expired account as an EXPIRE entry", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(s.clock.now() + 10 * SECOND) });
    await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 30n });
    await s.client.call("freeze", { customerId, transactionId: uid("hold"), amount: 20n });
    expect(await recordExpiries(s.app.context)).toBe(0);
    s.clock.advance(10 * SECOND);
    expect(await recordExpiries(s.app.context)).toBe(1);
    expect(await recordExpiries(s.app.context)).toBe(0);
    const expired = await s.client.call("listLedgerEntries", { customerId, operationTypes: [OperationType.OPERATION_TYPE_EXPIRE] });
    expect(expired.entries.map((e) => [e.amount, e.automatic])).toEqual([[50n, true]]);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("records a customer's due accounts together, each with its own EXPIRE entry and balance_after", async () => {
    const customerId = uid("cust");
    const at = ts(s.clock.now() + 10 * SECOND);
    await s.client.call("deposit", { customerId, amount: 100n, expiresAt: at, source: "a" });
    await s.client.call("deposit", { customerId, amount: 40n, expiresAt: ts(s.clock.now() + 11 * SECOND), source: "b" });
    await s.client.call("deposit", { customerId, amount: 10n, expiresAt: ts(s.clock.now() + 12 * SECOND), source: "c" });
    await s.client.call("deposit", { customerId, amount: 7n, source: "kept" });
    // Soonest expiry first: the deduct and the hold take from a, which keeps 50 available.
    await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 30n });
    await s.client.call("freeze", { customerId, transactionId: uid("hold"), amount: 20n });
    s.clock.advance(20 * SECOND);
    expect(await recordExpiries(s.app.context)).toBe(3);
    expect(await recordExpiries(s.app.context)).toBe(0);
    const expired = await s.client.call("listLedgerEntries", { customerId, operationTypes: [OperationType.OPERATION_TYPE_EXPIRE] });
    expect(expired.entries.map((e) => [e.source, e.amount, e.sequence, e.balanceAfter])).toEqual([
      ["c", 10n, 9n, { total: 7n, used: 0n, frozen: 0n, available: 7n }],
      ["b", 40n, 8n, { total: 17n, used: 0n, frozen: 0n, available: 17n }],
      ["a", 50n, 7n, { total: 57n, used: 0n, frozen: 0n, available: 57n }],
    ]);
    expect((await s.client.call("getCustomer", { customerId })).balance).toEqual({ total: 7n, used: 0n, frozen: 0n, available: 7n });
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("works through a burst of due holds and expiries larger than a batch in one sweep", async () => {
    const holders = [uid("cust"), uid("cust"), uid("cust")];
    for (const customerId of holders) await s.client.call("deposit", { customerId, amount: 1000n });
    const holds = Array.from({ length: 2 * SWEEP_BATCH_SIZE + 20 }, (_, i) => ({
      customerId: holders[i % 3] as string,
      transactionId: uid("hold"),
    }));
    for (const hold of holds) await s.client.call("freeze", { ...hold, amount: 5n, unfreezeAfterSeconds: 60n });
    const expiring = uid("cust");
    const accounts = EXPIRY_BATCH_SIZE + 10;
    for (let i = 0; i < accounts; i++) {
      await s.client.call("deposit", { customerId: expiring, amount: 2n, expiresAt: ts(s.clock.now() + 30 * SECOND + i * 1000) });
    }
    s.clock.advance(120 * SECOND);

    // A stopping instance starts no pass, and prunes nothing (retention of 0: every event is past it).
    const events = async () => (await s.app.database.pool.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM events"))[0][0]?.n;
    const kept = await events();
    const retention = { retentionMs: 0, awaitPublisher: false };
    expect(await sweep(s.app.context, silent, { retention, stopping: () => true })).toEqual({ settled: 0, recorded: 0, started: 0 });
    expect(await events()).toBe(kept);
    expect(await sweep(s.app.context, silent)).toEqual({ settled: holds.length, recorded: accounts, started: 0 });
    expect(await sweep(s.app.context, silent)).toEqual({ settled: 0, recorded: 0, started: 0 });
    for (const customerId of holders) {
      expect((await s.client.call("getCustomer", { customerId })).balance).toEqual({
        total: 1000n,
        used: 0n,
        frozen: 0n,
        available: 1000n,
      });
    }
    const expired = await s.client.call("listLedgerEntries", {
      customerId: expiring,
      operationTypes: [OperationType.OPERATION_TYPE_EXPIRE],
      pageSize: 100,
    });
    expect(expired.entries.length).toBe(accounts);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("leaves a customer it found busy out of the sweep's later reads, with no transaction for each of its rows", async () => {
    const [busy, idle] = [uid("cust"), uid("cust")];
    for (const customerId of [busy, idle]) await s.client.call("deposit", { customerId, amount: 100n });
    for (let i = 0; i < 3; i++) {
      await s.client.call("freeze", { customerId: busy, transactionId: uid("hold"), amount: 1n, unfreezeAfterSeconds: 10n });
      await s.client.call("deposit", { customerId: busy, amount: 1n, source: `x${i}`, expiresAt: ts(s.clock.now() + 10 * SECOND) });
    }
    await s.client.call("freeze", { customerId: idle, transactionId: uid("hold"), amount: 1n, unfreezeAfterSeconds: 20n });
    s.clock.advance(30 * SECOND);
    const busyPk = BigInt(
      (await s.app.database.pool.query<RowDataPacket[]>("SELECT id FROM customers WHERE customer_id = ?", [busy]))[0][0]?.id as number,
    );
    const holder = await holdCustomer(s.app.database.pool, busy);
    try {
      const found = new Set<bigint>();
      expect(await sweepDueHoldsFrom(s.app.context, silent, null, found)).toEqual({ done: 1, next: null, failures: [] });
      expect([...found]).toEqual([busyPk]);
      // Read again, the busy customer's holds and accounts are left out in the query itself.
      expect((await listDueHolds(s.app.database.db, s.clock.now(), 50, null, found)).length).toBe(0);
      expect(await recordExpiriesFrom(s.app.context, null, found)).toEqual({ done: 0, next: null, failures: [] });
      expect((await recordExpiriesFrom(s.app.context, null)).done).toBe(0);
    } finally {
      await holder.query("COMMIT");
      holder.release();
    }
    expect(await sweep(s.app.context, silent)).toEqual({ settled: 3, recorded: 3, started: 0 });
  });

  it("settles and records the other customers' due holds and expiries while a customer with a batch of them is held", async () => {
    const [busy, idle] = [uid("cust"), uid("cust")];
    for (const customerId of [busy, idle]) await s.client.call("deposit", { customerId, amount: 1000n });
    // The busy customer's holds and accounts come first in the due order, more than a batch of each.
    for (let i = 0; i < SWEEP_BATCH_SIZE + 5; i++) {
      await s.client.call("freeze", { customerId: busy, transactionId: uid("hold"), amount: 1n, unfreezeAfterSeconds: 10n });
    }
    for (let i = 0; i < EXPIRY_BATCH_SIZE + 5; i++) {
      await s.client.call("deposit", { customerId: busy, amount: 1n, source: `s${i}`, expiresAt: ts(s.clock.now() + 10 * SECOND) });
    }
    s.clock.advance(SECOND);
    await s.client.call("freeze", { customerId: idle, transactionId: uid("hold"), amount: 7n, unfreezeAfterSeconds: 10n });
    await s.client.call("deposit", { customerId: idle, amount: 3n, source: "expiring", expiresAt: ts(s.clock.now() + 10 * SECOND) });
    s.clock.advance(20 * SECOND);
    const holder = await holdCustomer(s.app.database.pool, busy);
    try {
      expect(await sweep(s.app.context, silent)).toEqual({ settled: 1, recorded: 1, started: 0 });
      expect((await s.client.call("getCustomer", { customerId: idle })).balance).toEqual({
        total: 1000n,
        used: 0n,
        frozen: 0n,
        available: 1000n,
      });
    } finally {
      await holder.query("COMMIT");
      holder.release();
    }
    expect(await sweep(s.app.context, silent)).toEqual({ settled: SWEEP_BATCH_SIZE + 5, recorded: EXPIRY_BATCH_SIZE + 5, started: 0 });
    expect((await s.client.call("getCustomer", { customerId: busy })).balance).toEqual({
      total: 1000n,
      used: 0n,
      frozen: 0n,
      available: 1000n,
    });
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("records a pass of many customers' expiries and starts in one transaction, past a held customer and one whose records fail", async () => {
    await sweep(s.app.context, silent);
    const customerIds = Array.from({ length: 30 }, () => uid("cust"));
    const at = ts(s.clock.now() + 30 * SECOND);
    const operations = customerIds.flatMap((customerId) => [
      { operation: { $case: "deposit" as const, value: { customerId, amount: 100n, source: "expiring", expiresAt: at } } },
      { operation: { $case: "deposit" as const, value: { customerId, amount: 40n, source: "later", startsAt: at } } },
    ]);
    expect((await s.client.call("batch", { operations, atomic: true })).failedIndex).toBeUndefined();
    s.clock.advance(31 * SECOND);
    const [held, failing] = [customerIds[4] as string, customerIds[9] as string];
    const pkOf = async (customerId: string) =>
      BigInt((await s.app.database.pool.query<RowDataPacket[]>("SELECT id FROM customers WHERE customer_id = ?", [customerId]))[0][0]?.id);
    const failingPk = await pkOf(failing);
    // One customer's EXPIRE entry is refused by the database: the pass's list fails, and its
    // customers are recorded again one a list, so that only that one is left.
    await s.app.database.pool.query(
      `CREATE TRIGGER refuse_one_expiry BEFORE INSERT ON ledger_entries FOR EACH ROW
         IF NEW.customer_pk = ${failingPk} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF`,
    );
    const transactions = countedTransactions(s.app);
    const failures: bigint[] = [];
    const holder = await holdCustomer(s.app.database.pool, held);
    try {
      // The expiries' list failed, then ran one customer a list (30); the starts in one list, the
      // held customer's and the failing one's left for the next sweep.
      transactions.reset();
      expect(await sweep(transactions.context, silent, { onExpiryFailure: (pk) => failures.push(pk) })).toEqual({
        settled: 0,
        recorded: 28,
        started: 28,
      });
      expect(failures).toEqual([failingPk]);
      expect(transactions.count()).toBe(1 + 30 + 1);
    } finally {
      await holder.query("COMMIT");
      holder.release();
      await s.app.database.pool.query("DROP TRIGGER refuse_one_expiry");
    }
    transactions.reset();
    expect(await sweep(transactions.context, silent)).toEqual({ settled: 0, recorded: 2, started: 2 });
    expect(transactions.count()).toBe(2);
    for (const customerId of customerIds) {
      expect((await s.client.call("getCustomer", { customerId })).balance).toEqual({ total: 40n, used: 0n, frozen: 0n, available: 40n });
      const expired = await s.client.call("listLedgerEntries", { customerId, operationTypes: [OperationType.OPERATION_TYPE_EXPIRE] });
      expect(expired.entries.map((e) => [e.amount, e.balanceAfter?.available])).toEqual([[100n, 40n]]);
    }
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("sends a hold overdue on a busy customer behind that customer's calls in flight here, without waiting for it; a customer held with none waits for a gap", async () => {
    await sweep(s.app.context, silent);
    const [written, held] = [uid("cust"), uid("cust")];
    for (const customerId of [written, held]) await s.client.call("deposit", { customerId, amount: 100n });
    const [overdue, due, heldHold] = [uid("hold"), uid("hold"), uid("hold")];
    await s.client.call("freeze", { customerId: written, transactionId: overdue, amount: 40n, unfreezeAfterSeconds: 10n });
    await s.client.call("freeze", { customerId: held, transactionId: heldHold, amount: 20n, unfreezeAfterSeconds: 10n });
    s.clock.advance(10 * SECOND + SWEEP_IN_LINE_OVERDUE_MS);
    await s.client.call("freeze", { customerId: written, transactionId: due, amount: 30n, consumeAfterSeconds: 1n });
    s.clock.advance(SECOND);
    // A customer written without pause looks to SKIP LOCKED like `written` here: held, with a call of it in flight.
    const pool = s.app.database.pool;
    const [writtenHolder, heldHolder] = [await holdCustomer(pool, written), await holdCustomer(pool, held)];
    const deduct = s.client.call("deduct", { customerId: written, transactionId: uid("tx"), amount: 10n });
    await waitFor(() => lockingReadWaits(writtenHolder), "the Deduct waiting for its customer");
    const settledLate: [number, string][] = [];
    const overdueLine = overdueSettlements(s.app.context, silent, { onSettled: (ms, via) => settledLate.push([ms, via]) });
    expect(await sweep(s.app.context, silent, { overdue: overdueLine })).toEqual({ settled: 0, recorded: 0, started: 0 });
    // The sweep did not wait for it. Only the overdue hold went: the other is 1 s past its deadline,
    // and the held customer has no call here to go behind.
    expect(overdueLine.size).toBe(1);
    await writtenHolder.query("COMMIT");
    writtenHolder.release();
    expect((await deduct).balance).toMatchObject({ available: 20n });
    await overdueLine.answered();
    expect(overdueLine.size).toBe(0);
    // Its deadline 10 s after the Freeze, settled at 13 s.
    expect(settledLate).toEqual([[3 * SECOND, "in_line"]]);
    expect(await s.client.call("getTransaction", { transactionId: overdue })).toMatchObject({
      settledAutomatically: true,
      returnedAmount: 40n,
    });
    expect((await s.client.call("getCustomer", { customerId: written })).balance).toEqual({
      total: 100n,
      used: 10n,
      frozen: 30n,
      available: 60n,
    });
    expect((await s.client.call("getCustomer", { customerId: held })).balance).toMatchObject({ frozen: 20n });
    await heldHolder.query("COMMIT");
    heldHolder.release();
    expect(await sweep(s.app.context, silent, { overdue: overdueLine })).toEqual({ settled: 2, recorded: 0, started: 0 });
    expect(overdueLine.size).toBe(0);
    expect((await s.client.call("getCustomer", { customerId: written })).balance).toEqual({
      total: 100n,
      used: 40n,
      frozen: 0n,
      available: 60n,
    });
    expect((await s.client.call("getCustomer", { customerId: held })).balance).toEqual({
      total: 100n,
      used: 0n,
      frozen: 0n,
      available: 100n,
    });
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("answers a hold sent in line without running it once its customer is held past the bound, and sends none while the customer's calls wait set aside", async () => {
    await sweep(s.app.context, silent);
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const hold = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: hold, amount: 40n, unfreezeAfterSeconds: 10n });
    s.clock.advance(10 * SECOND + SWEEP_IN_LINE_OVERDUE_MS);
    const pool = s.app.database.pool;
    const first = await holdCustomer(pool, customerId);
    const deducts = [s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 10n })];
    await waitFor(() => lockingReadWaits(first), "the first Deduct waiting for its customer");
    const overdue = overdueSettlements(s.app.context, silent);
    await sweepDueHoldsFrom(s.app.context, silent, null, new Set(), { overdue });
    expect(overdue.size).toBe(1);
    deducts.push(s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 10n }));
    // Another transaction takes the customer right after the first Deduct: the group with the
    // settlement and the second Deduct waits for it past group commit's bound.
    const second = holdCustomer(pool, customerId);
    await waitFor(() => lockingReadWaits(first, 2), "the second holder waiting behind the first Deduct");
    await first.query("COMMIT");
    first.release();
    const secondHolder = await second;
    // The settlement is answered, not run, while the customer is still held; the Deduct waits on, set aside.
    await overdue.answered();
    expect(overdue.size).toBe(0);
    expect((await s.client.call("getTransaction", { transactionId: hold })).status).toBe(TransactionStatus.TRANSACTION_STATUS_FROZEN);
    await sweepDueHoldsFrom(s.app.context, silent, null, new Set(), { overdue });
    expect(overdue.size).toBe(0);
    await secondHolder.query("COMMIT");
    secondHolder.release();
    await Promise.all(deducts);
    expect(await sweepDueHolds(s.app.context, silent)).toBe(1);
    expect((await s.client.call("getCustomer", { customerId })).balance).toEqual({ total: 100n, used: 20n, frozen: 0n, available: 80n });
  });

  it("settles an overdue hold once when two instances send it behind their calls of its customer at once, and answers the caller's Unfreeze sent then", async () => {
    await sweep(s.app.context, silent);
    const other = await s.startAnotherInstance();
    const otherClient = new TestClient(other.port, s.apiKey);
    try {
      const customerId = uid("cust");
      await s.client.call("deposit", { customerId, amount: 100n });
      const [hold, manual] = [uid("hold"), uid("hold")];
      await s.client.call("freeze", { customerId, transactionId: hold, amount: 40n, consumeAfterSeconds: 10n });
      await s.client.call("freeze", { customerId, transactionId: manual, amount: 20n, unfreezeAfterSeconds: 10n });
      s.clock.advance(10 * SECOND + SWEEP_IN_LINE_OVERDUE_MS);
      const holder = await holdCustomer(s.app.database.pool, customerId);
      const deducts = [s.client, otherClient].map((client) => client.call("deduct", { customerId, transactionId: uid("tx"), amount: 10n }));
      await waitFor(() => lockingReadWaits(holder, 2), "both Deducts waiting for their customer");
      const logged: string[] = [];
      const log = pino({ level: "info" }, { write: (line: string) => logged.push(line) });
      const [mine, theirs] = [overdueSettlements(s.app.context, log), overdueSettlements(other.context, log)];
      const lines = [mine, theirs];
      const swept = await Promise.all([sweep(s.app.context, silent, { overdue: mine }), sweep(other.context, silent, { overdue: theirs })]);
      expect(swept.map((r) => r.settled)).toEqual([0, 0]);
      expect(lines.map((line) => line.size)).toEqual([2, 2]);
      // A caller unfreezes the second hold while both settlements of it are in line.
      const unfreeze = otherClient.call("unfreeze", { transactionId: manual });
      await waitFor(() => lockingReadWaits(holder, 3), "the Unfreeze waiting for its customer too");
      await holder.query("COMMIT");
      holder.release();
      await Promise.all(deducts);
      await Promise.all(lines.map((line) => line.answered()));
      const unfrozen = await unfreeze.then(
        (answer) => ({ replay: answer.isIdempotentReplay }),
        (error: unknown) => ({ error }),
      );
      const settled = await s.client.call("getTransaction", { transactionId: manual });
      // Whichever came first decided: the caller's Unfreeze fresh, or the sweeper's and the caller refused.
      if ("error" in unfrozen) {
        await expectError(Promise.reject(unfrozen.error), "freeze_auto_unfrozen");
        expect(settled.settledAutomatically).toBe(true);
      } else {
        expect(unfrozen).toEqual({ replay: false });
        expect(settled.settledAutomatically).toBe(false);
      }
      expect(await s.client.call("getTransaction", { transactionId: hold })).toMatchObject({
        settledAutomatically: true,
        consumedAmount: 40n,
      });
      const ledger = await s.client.call("listLedgerEntries", {
        customerId,
        operationTypes: [OperationType.OPERATION_TYPE_CONSUME, OperationType.OPERATION_TYPE_UNFREEZE],
      });
      expect(ledger.entries.map((e) => [e.transactionId, e.amount]).sort()).toEqual(
        [
          [hold, 40n],
          [manual, 20n],
        ].sort(),
      );
      expect((await s.client.call("getCustomer", { customerId })).balance).toEqual({ total: 100n, used: 60n, frozen: 0n, available: 40n });
      // The settlements that found their hold settled by the other instance, or by the caller, said nothing.
      expect(logged).toEqual([]);
      expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
    } finally {
      otherClient.close();
    }
  });

  it("reports freeze_records_inconsistent when a hold's allocations no longer add up", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("hold");
    await s.client.call("freeze", { customerId, transactionId, amount: 40n });
    await s.app.database.pool.query(
      "DELETE al FROM allocations al JOIN transactions t ON t.id = al.transaction_pk WHERE t.transaction_id = ?",
      [transactionId],
    );
    const info = await expectError(s.client.call("consume", { transactionId }), "freeze_records_inconsistent");
    expect(info).toMatchObject({ frozen: "40", allocated: "0" });
  });

  it("reads due holds again from the head during a long sweep of starts, not only once it ends", async () => {
    await sweep(s.app.context, silent);
    const customerId = uid("cust");
    const startsAt = ts(s.clock.now() + 10 * SECOND);
    const accounts = 3 * EXPIRY_BATCH_SIZE;
    for (let from = 0; from < accounts; from += 50) {
      const operations = Array.from({ length: 50 }, (_, i) => ({
        operation: { $case: "deposit" as const, value: { customerId, amount: 1n, source: `grant-${from + i}`, startsAt } },
      }));
      expect((await s.client.call("batch", { operations, atomic: true })).failedIndex).toBeUndefined();
    }
    const holder = uid("cust");
    await s.client.call("deposit", { customerId: holder, amount: 100n });
    await s.client.call("freeze", { customerId: holder, transactionId: uid("hold"), amount: 40n, unfreezeAfterSeconds: 12n });
    s.clock.advance(11 * SECOND);
    // The starts take four passes; the hold falls due after the first, two seconds later.
    let passes = 0;
    const stopping = () => {
      if (++passes === 2) s.clock.advance(2 * SECOND);
      return false;
    };
    expect(await sweep(s.app.context, silent, { stopping })).toEqual({ settled: 1, recorded: 0, started: accounts });
    expect((await s.client.call("getCustomer", { customerId: holder })).balance?.frozen).toBe(0n);
  });
});

describe("the sweeper with side by side off (GROUP_COMMIT_SIDE_BY_SIDE=false, a sharded database)", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ GROUP_COMMIT_SIDE_BY_SIDE: "false" });
  });
  afterAll(async () => {
    await s?.stop();
  });

  it("keeps every transaction within one customer: a customer's due holds, expiries and starts each in one", async () => {
    const customerIds = Array.from({ length: 6 }, () => uid("cust"));
    const at = ts(s.clock.now() + 30 * SECOND);
    for (const customerId of customerIds) {
      const operations = [
        { operation: { $case: "deposit" as const, value: { customerId, amount: 100n, source: "expiring", expiresAt: at } } },
        { operation: { $case: "deposit" as const, value: { customerId, amount: 40n, source: "later", startsAt: at } } },
        { operation: { $case: "deposit" as const, value: { customerId, amount: 50n, source: "kept" } } },
        {
          operation: { $case: "freeze" as const, value: { customerId, transactionId: uid("hold"), amount: 10n, consumeAfterSeconds: 30n } },
        },
        {
          operation: {
            $case: "freeze" as const,
            value: { customerId, transactionId: uid("hold"), amount: 20n, unfreezeAfterSeconds: 30n },
          },
        },
      ];
      expect((await s.client.call("batch", { operations, atomic: true })).failedIndex).toBeUndefined();
    }
    s.clock.advance(31 * SECOND);
    const transactions = countedTransactions(s.app);
    expect(await sweep(transactions.context, silent)).toEqual({ settled: 12, recorded: 6, started: 6 });
    // Per customer: its two holds in one, its expiry in one, its start in one.
    expect(transactions.count()).toBe(6 * 3);
    for (const customerId of customerIds) {
      // The holds took 30 from the expiring account (soonest expiry first): 10 consumed, 20 returned, then 90 expired.
      expect((await s.client.call("getCustomer", { customerId })).balance).toEqual({ total: 90n, used: 0n, frozen: 0n, available: 90n });
    }
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });
});

describe("the running sweeper", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s?.stop();
  });

  it("sweeps once at start, and goes on at once after a sweep that stopped at its passes with work left, not at the next tick", async () => {
    for (let c = 0; c < 12; c++) {
      const customerId = uid("cust");
      await s.client.call("deposit", { customerId, amount: 100n });
      for (let h = 0; h < 10; h++)
        await s.client.call("freeze", { customerId, transactionId: uid("hold"), amount: 1n, unfreezeAfterSeconds: 10n });
    }
    s.clock.advance(10 * SECOND);
    const frozen = async () => {
      const [rows] = await s.app.database.pool.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM transactions WHERE status = 'FROZEN'");
      return Number(rows[0]?.n);
    };
    expect(await frozen()).toBe(120);
    // No tick comes within the test: one pass of 50 a sweep, so three sweeps, each started by the last.
    const sweeper = startSweeper(s.app.context, silent, { intervalMs: 3_600_000, passesMax: 1 });
    try {
      await waitFor(async () => (await frozen()) === 0, "the 120 due holds settled");
    } finally {
      await sweeper.stop();
    }
    const [rows] = await s.app.database.pool.query<RowDataPacket[]>(
      "SELECT COUNT(*) AS n FROM transactions WHERE status = 'UNFROZEN' AND settled_automatically = 1",
    );
    expect(Number(rows[0]?.n)).toBe(120);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("reports how late it settled each due hold in billing_auto_settlement_lateness_seconds", async () => {
    const other = await s.startAnotherInstance({ SWEEP_INTERVAL_MS: "50" });
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("hold");
    await s.client.call("freeze", { customerId, transactionId, amount: 40n, consumeAfterSeconds: 10n });
    s.clock.advance(13 * SECOND);
    // Waited for on the metric, not the hold: the sweeper observes a settlement after its COMMIT's
    // answer, which a read on another connection can see first.
    const lateness = () => other.metrics.registry.getSingleMetricAsString("billing_auto_settlement_lateness_seconds");
    await waitFor(
      async () => (await lateness()).includes('billing_auto_settlement_lateness_seconds_count{via="pass"} 1'),
      "the running sweeper settling the hold",
    );
    expect((await s.client.call("getTransaction", { transactionId })).status).toBe(TransactionStatus.TRANSACTION_STATUS_CONSUMED);
    const text = await lateness();
    expect(text).toContain('billing_auto_settlement_lateness_seconds_bucket{le="2",via="pass"} 0');
    expect(text).toContain('billing_auto_settlement_lateness_seconds_bucket{le="5",via="pass"} 1');
    expect(text).toContain('billing_auto_settlement_lateness_seconds_count{via="pass"} 1');
  });
});

describe("a hold whose auto-settlement fails", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s?.stop();
  });

  /** Customers with 100 each and two holds each, due in 30 s: 10 to consume, 20 to unfreeze. */
  async function customersWithDueHolds(count: number): Promise<{ customerId: string; toConsume: string; toUnfreeze: string }[]> {
    const customers = Array.from({ length: count }, () => ({ customerId: uid("cust"), toConsume: uid("hold"), toUnfreeze: uid("hold") }));
    const operations = customers.flatMap(({ customerId, toConsume, toUnfreeze }) => [
      { operation: { $case: "deposit" as const, value: { customerId, amount: 100n } } },
      { operation: { $case: "freeze" as const, value: { customerId, transactionId: toConsume, amount: 10n, consumeAfterSeconds: 30n } } },
      { operation: { $case: "freeze" as const, value: { customerId, transactionId: toUnfreeze, amount: 20n, unfreezeAfterSeconds: 30n } } },
    ]);
    expect((await s.client.call("batch", { operations, atomic: true })).failedIndex).toBeUndefined();
    return customers;
  }

  const deleteAllocations = (transactionId: string) =>
    s.app.database.pool.query("DELETE al FROM allocations al JOIN transactions t ON t.id = al.transaction_pk WHERE t.transaction_id = ?", [
      transactionId,
    ]);

  it("settles a pass of many customers' due holds in one transaction, past a held customer, postponing only the hold that is inconsistent", async () => {
    const customers = await customersWithDueHolds(12);
    const [held, inconsistent] = [customers[3], customers[5]];
    if (!held || !inconsistent) throw new Error("no such customer");
    await deleteAllocations(inconsistent.toConsume);
    s.clock.advance(31 * SECOND);
    const transactions = countedTransactions(s.app);
    const holder = await holdCustomer(s.app.database.pool, held.customerId);
    try {
      // One list for the 24 holds; one more transaction postpones the inconsistent one.
      expect(await sweepDueHolds(transactions.context, silent)).toBe(24 - 2 - 1);
      expect(transactions.count()).toBe(1 + 1);
    } finally {
      await holder.query("COMMIT");
      holder.release();
    }
    transactions.reset();
    expect(await sweepDueHolds(transactions.context, silent)).toBe(2);
    expect(transactions.count()).toBe(1);
    for (const { customerId } of customers) {
      const expected = customerId === inconsistent.customerId ? { used: 0n, frozen: 10n } : { used: 10n, frozen: 0n };
      expect((await s.client.call("getCustomer", { customerId })).balance).toMatchObject(expected);
    }
    const settled = await s.client.call("getTransaction", { transactionId: customers[0]?.toUnfreeze ?? "" });
    expect(settled).toMatchObject({ settledAutomatically: true, returnedAmount: 20n });
  });

  it("runs a pass whose list failed again one hold at a time: only the failing customer's holds are postponed", async () => {
    const customers = await customersWithDueHolds(4);
    const failing = customers[2];
    if (!failing) throw new Error("no such customer");
    const [[row]] = await s.app.database.pool.query<RowDataPacket[]>("SELECT id FROM customers WHERE customer_id = ?", [
      failing.customerId,
    ]);
    await s.app.database.pool.query(
      `CREATE TRIGGER refuse_one_settlement BEFORE INSERT ON ledger_entries FOR EACH ROW
         IF NEW.customer_pk = ${Number(row?.id)} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF`,
    );
    s.clock.advance(31 * SECOND);
    const transactions = countedTransactions(s.app);
    const lines: string[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => lines.push(line) });
    try {
      // The list, then each of the 8 holds alone, then the failing customer's two postponed.
      expect(await sweepDueHolds(transactions.context, log)).toBe(6);
      expect(transactions.count()).toBe(1 + 8 + 2);
    } finally {
      await s.app.database.pool.query("DROP TRIGGER refuse_one_settlement");
    }
    expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual([
      "auto-settlement failed; postponed",
      "auto-settlement failed; postponed",
    ]);
    expect((await s.client.call("getCustomer", { customerId: failing.customerId })).balance).toMatchObject({ used: 0n, frozen: 30n });
    s.clock.advance(60 * SECOND);
    expect(await sweepDueHolds(s.app.context, silent)).toBe(2);
    expect((await s.client.call("getCustomer", { customerId: failing.customerId })).balance).toMatchObject({ used: 10n, frozen: 0n });
  });

  it("is postponed by a minute, behind the others, and logged by its row id, never its transaction id", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("hold");
    await s.client.call("freeze", { customerId, transactionId, amount: 40n, consumeAfterSeconds: 30n });
    await s.app.database.pool.query(
      "DELETE al FROM allocations al JOIN transactions t ON t.id = al.transaction_pk WHERE t.transaction_id = ?",
      [transactionId],
    );
    s.clock.advance(31 * SECOND);
    const lines: string[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => lines.push(line) });
    expect(await sweepDueHolds(s.app.context, log)).toBe(0);
    const [rows] = await s.app.database.pool.query("SELECT id, auto_at FROM transactions WHERE transaction_id = ?", [transactionId]);
    const hold = (rows as { id: number; auto_at: Date }[])[0];
    expect(hold?.auto_at.getTime()).toBe(s.clock.now() + 60 * SECOND);
    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toMatchObject([
      { msg: "auto-settlement failed; postponed", holdPk: String(hold?.id), err: { type: "BillingError" } },
    ]);
    expect(lines.join("\n")).not.toContain(transactionId);
    // Not due again until then.
    expect(await sweepDueHolds(s.app.context, log)).toBe(0);
    expect(lines).toHaveLength(1);
    // Another instance that read the hold due before it moved finds it moved, and leaves it (and the line) to this one.
    const dueAtMs = s.clock.now() - SECOND;
    const postpone = (fromMs: number) =>
      postponeAutoSettlement(s.app.database, { projectId: 1n, transactionId, fromMs }, s.clock.now() + 120 * SECOND);
    expect(await postpone(dueAtMs)).toBe("moved");
    expect(await postpone(s.clock.now() + 60 * SECOND)).toBe("postponed");
  });

  it("sends a failing hold in line once a minute, not at every sweep, when its postponement finds its customer busy", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("hold");
    await s.client.call("freeze", { customerId, transactionId, amount: 40n, unfreezeAfterSeconds: 30n });
    await deleteAllocations(transactionId);
    s.clock.advance(33 * SECOND);
    const [rows] = await s.app.database.pool.query<RowDataPacket[]>("SELECT id FROM transactions WHERE transaction_id = ?", [
      transactionId,
    ]);
    const holdPk = String(rows[0]?.id);
    // This hold's lines (the other tests' failing holds fall due again as the clock moves).
    const lines: string[] = [];
    const log = pino(
      { level: "info" },
      { write: (line: string) => (JSON.parse(line) as { holdPk?: string }).holdPk === holdPk && lines.push(line) },
    );
    const overdue = overdueSettlements(s.app.context, log);
    /** A sweep while the customer has a Deduct in flight here, waiting for its lock: how many holds went in line. */
    const sweepWhileWritten = async () => {
      const holder = await holdCustomer(s.app.database.pool, customerId);
      const deduct = s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 1n });
      await waitFor(() => lockingReadWaits(holder), "the Deduct waiting for its customer");
      await sweepDueHoldsFrom(s.app.context, log, null, new Set(), { overdue });
      const sent = overdue.size;
      await holder.query("COMMIT");
      holder.release();
      await deduct;
      await overdue.answered();
      return sent;
    };
    const dueAgain = () =>
      s.app.database.pool.query("UPDATE transactions SET auto_at = ? WHERE transaction_id = ?", [
        new Date(s.clock.now() - 3 * SECOND),
        transactionId,
      ]);
    expect(await sweepWhileWritten()).toBe(1);
    expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(["auto-settlement failed; postponed"]);
    // As if its postponement had found the customer busy: due still, but not sent again within the minute.
    await dueAgain();
    expect(await sweepWhileWritten()).toBe(0);
    s.clock.advance(60 * SECOND);
    await dueAgain();
    expect(await sweepWhileWritten()).toBe(1);
    expect(lines).toHaveLength(2);
    expect((await s.client.call("getCustomer", { customerId })).balance).toEqual({ total: 100n, used: 3n, frozen: 40n, available: 57n });
  });
});

describe("database outage", () => {
  it("fails fast with service_unavailable, goes NOT_SERVING, and recovers by itself", async () => {
    const proxy = new TcpProxy(3306);
    const port = await proxy.start();
    const db = uniqueDatabaseUrl("vb_outage");
    type Line = {
      msg: string;
      code?: string;
      route?: string;
      status?: number;
      cause?: { code?: string };
      err?: { code?: string; message?: string };
    };
    const lines: Line[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as Line) });
    const s = await startTestServer(
      { DATABASE_URL: db.url.replace("127.0.0.1:3306", `127.0.0.1:${port}`), HEALTH_CHECK_INTERVAL_MS: "100", SWEEP_INTERVAL_MS: "50" },
      { log },
    );
    const sweepLines = () => lines.map((l) => l.msg).filter((m) => m.startsWith("sweep"));
    const health = loadPackageDefinition(
      loadSync(`${ROOT}/node_modules/grpc-health-check/proto/health/v1/health.proto`, { enums: String }),
    );
    type Health = { check(r: object, cb: (e: ServiceError | null, v: { status: string }) => void): void };
    const HealthClient = (health.grpc as Record<string, Record<string, Record<string, unknown>>>).health?.v1?.Health as new (
      a: string,
      c: unknown,
    ) => Health;
    const hc = new HealthClient(`127.0.0.1:${s.app.port}`, credentials.createInsecure());
    const status = () => new Promise<string>((resolve, reject) => hc.check({ service: "" }, (e, r) => (e ? reject(e) : resolve(r.status))));
    try {
      const customerId = uid("cust");
      await s.client.call("deposit", { customerId, amount: 100n });
      await expect.poll(status, { timeout: 5000 }).toBe("SERVING");
      const session = await consoleSession(s.httpUrl, s.apiKey);

      await proxy.cut();
      const started = Date.now();
      await expectError(s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 1n }), "service_unavailable");
      expect(Date.now() - started).toBeLessThan(10_000);
      // Its log line says why, by the driver's code, never its message; so do the HTTP API's and the console's.
      const lostConnection = ["ECONNREFUSED", "ECONNRESET", "PROTOCOL_CONNECTION_LOST"];
      const unavailable = lines.find((l) => l.msg === "call" && l.code === "service_unavailable");
      expect(lostConnection).toContain(unavailable?.cause?.code);
      const api = await fetch(`${s.httpUrl}/v1/customers/${customerId}`, { headers: { authorization: `Bearer ${s.apiKey}` } });
      const page = await fetch(`${s.httpUrl}/console/customers/${customerId}`, { headers: { cookie: session.cookie } });
      expect([api.status, api.headers.get("retry-after"), page.status, page.headers.get("retry-after")]).toEqual([503, "1", 503, "1"]);
      const httpUnavailable = lines.filter((l) => l.msg === "http call" && l.code === "service_unavailable");
      expect(httpUnavailable.map((l) => [l.route, l.status, lostConnection.includes(l.cause?.code ?? "")])).toEqual([
        ["GET /v1/customers/:customer_id", 503, true],
        ["GET /console/customers/:id", 503, true],
      ]);
      await expect.poll(status, { timeout: 5000 }).toBe("NOT_SERVING");
      // The health watch's one line says why: the probe's failure, by its code and the driver's words.
      const unreachable = lines.filter((l) => l.msg === "database unreachable");
      expect(unreachable).toHaveLength(1);
      expect([...lostConnection, "PROTOCOL_SEQUENCE_TIMEOUT"]).toContain(unreachable[0]?.err?.code);
      expect(unreachable[0]?.err?.message).toEqual(expect.any(String));
      const healthBody = await (await fetch(`${s.httpUrl}/v1/health`)).json();
      expect(healthBody).toMatchObject({
        error: {
          code: "service_unavailable",
          message: "This instance cannot reach its database.",
          details: { reason: "database_unreachable" },
        },
      });
      // Every sweep fails while the database is away: one warning, however many of them.
      await sleep(1_000);
      expect(sweepLines()).toEqual(["sweep failed; retrying every interval, quietly until one succeeds"]);

      await proxy.restore();
      await expect.poll(status, { timeout: 10_000 }).toBe("SERVING");
      expect(lines.filter((l) => l.msg === "database reachable again")).toHaveLength(1);
      await expect
        .poll(sweepLines, { timeout: 10_000 })
        .toEqual(["sweep failed; retrying every interval, quietly until one succeeds", "sweeps succeed again"]);
      const r = await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 1n });
      expect(r.balance?.available).toBe(99n);
    } finally {
      await s.stop();
      await proxy.cut();
      await db.drop();
    }
  });

  it("keeps a WatchEvents stream open while its key's rechecks and its reads find the database away, and still ends it on a revoke after", async () => {
    const proxy = new TcpProxy(3306);
    const port = await proxy.start();
    const db = uniqueDatabaseUrl("vb_outage_watch");
    const s = await startTestServer({ DATABASE_URL: db.url.replace("127.0.0.1:3306", `127.0.0.1:${port}`), API_KEY_CACHE_TTL_MS: "1000" });
    try {
      const key = await s.createKey({ scope: "read" });
      const customerId = uid("cust");
      const watcher = new TestWatcher(s.app.port, key.key, { customerId });
      await s.client.call("deposit", { customerId, amount: 5n });
      await watcher.count(1);
      await sleep(500);
      await proxy.cut();
      // Two rechecks of the key (one a second) fail with the database away: neither ends the
      // stream. Nor do its reads: told the feed moved (as the stamper tells it after stamping),
      // it reads, finds the database away, and reads again a while later (250 ms, 500, 1 s...).
      s.app.context.events?.tail.poke();
      await sleep(2_500);
      const endedMeanwhile = await Promise.race([watcher.ended.then(() => true), sleep(10).then(() => false)]);
      await proxy.restore();
      await expect
        .poll(
          async () =>
            await s.client.call("deposit", { customerId, amount: 6n }).then(
              () => true,
              () => false,
            ),
          { timeout: 10_000 },
        )
        .toBe(true);
      await Promise.race([watcher.count(2), watcher.ended]);
      expect([endedMeanwhile, watcher.events.length]).toEqual([false, 2]);
      await s.revokeKey(key.prefix);
      await expectError(
        watcher.ended.then((e) => Promise.reject(e)),
        "api_key_revoked",
      );
      expect([endedMeanwhile, watcher.events.map((e) => e.type)]).toEqual([false, ["ledger.deposit", "ledger.deposit"]]);
      watcher.close();
    } finally {
      await s.stop();
      await proxy.cut();
      await db.drop();
    }
  });

  it("a table taken away under the running service (a restore reloading it) answers service_unavailable, and serves once it is back", async () => {
    type Line = { msg: string; code?: string; status?: number; cause?: { errno?: number } };
    const lines: Line[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as Line) });
    const s = await startTestServer({}, { log });
    const alerts = () => fetch(`${s.httpUrl}/v1/alerts`, { headers: { authorization: `Bearer ${s.apiKey}` } });
    try {
      expect((await alerts()).status).toBe(200);
      await s.app.database.pool.query("RENAME TABLE balance_alerts TO balance_alerts_away");
      try {
        const gone = await alerts();
        expect([gone.status, gone.headers.get("retry-after")]).toEqual([503, "1"]);
        const line = lines.find((l) => l.msg === "http call" && l.code === "service_unavailable");
        expect(line).toMatchObject({ status: 503, cause: { errno: 1146 } });
      } finally {
        await s.app.database.pool.query("RENAME TABLE balance_alerts_away TO balance_alerts");
      }
      expect((await alerts()).status).toBe(200);
    } finally {
      await s.stop();
    }
  });

  /**
   * A server whose database is behind a proxy that can freeze (1 s of lock wait, health probed
   * every 100 ms), with a customer of 100 deposited and health 200; `end` thaws and drops it all.
   */
  async function behindFreezableProxy(name: string, env: Record<string, string> = {}) {
    const proxy = new TcpProxy(3306);
    const port = await proxy.start();
    const db = uniqueDatabaseUrl(name);
    const s = await startTestServer({
      DATABASE_URL: db.url.replace("127.0.0.1:3306", `127.0.0.1:${port}`),
      DB_LOCK_WAIT_TIMEOUT_S: "1",
      HEALTH_CHECK_INTERVAL_MS: "100",
      ...env,
    });
    const health = async () => (await fetch(`${s.httpUrl}/v1/health`)).status;
    const end = async () => {
      proxy.thaw();
      await s.stop();
      await proxy.cut();
      await db.drop();
    };
    const customerId = uid("cust");
    try {
      await s.client.call("deposit", { customerId, amount: 100n });
      expect(await health()).toBe(200);
    } catch (error) {
      await end();
      throw error;
    }
    return { proxy, s, health, customerId, end };
  }

  it("a hung server whose every pooled connection a read holds: health says so within the probe's bound, not after the statement timeout", async () => {
    const { proxy, s, health, customerId, end } = await behindFreezableProxy("vb_hang_pool", { DB_POOL_SIZE: "4" });
    try {
      proxy.freeze();
      // Six reads for four connections: the probe finds none free. Its bound (2 s) runs out long
      // before the reads' statement timeout (1 s of lock wait + the 10 s margin).
      const reads = Array.from({ length: 6 }, () => s.client.call("getCustomer", { customerId }));
      const started = Date.now();
      await expect.poll(health, { timeout: 6_000, interval: 100 }).toBe(503);
      expect(Date.now() - started).toBeLessThan(6_000);
      proxy.thaw();
      await Promise.allSettled(reads);
      await expect.poll(health, { timeout: 10_000, interval: 100 }).toBe(200);
    } finally {
      await end();
    }
  });

  it("a server that hangs (answers nothing, closes nothing) fails a call after the lock wait and a margin, not never; health says so", async () => {
    const { proxy, s, health, customerId, end } = await behindFreezableProxy("vb_hang");
    try {
      proxy.freeze();
      // 1 s of lock wait + the 10 s margin, then a new connection's 5 s connect timeout: well
      // before the test's own timeout, while the server stays frozen. A read outside a
      // transaction gives up after as long.
      await Promise.all([
        expectError(s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 1n }), "service_unavailable"),
        expectError(s.client.call("getCustomer", { customerId }), "service_unavailable"),
      ]);
      // The health probe gives up on the hung server too.
      expect(await health()).toBe(503);
      proxy.thaw();
      const r = await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 1n });
      expect(r.balance?.available).toBe(99n);
    } finally {
      await end();
    }
  });
});
