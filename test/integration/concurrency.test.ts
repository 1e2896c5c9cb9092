import type { ServiceError } from "@grpc/grpc-js";
import mysql, { type Connection, type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TransactionStatus } from "../../gen/velobase/billing/v1/billing.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { TestClient } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { untilLockWaiters } from "../support/race.js";
import { startTestServer, type TestServer } from "../support/server.js";

let s: TestServer;
/** A second instance over the same database, with a place for each of 8 customers' transactions at once. */
let elsewhere: TestClient;
/** A raw connection that holds what the racing calls need until all of them wait for it. */
let holder: Connection;
beforeAll(async () => {
  s = await startTestServer({ DB_POOL_SIZE: "32" });
  const other = await s.startAnotherInstance({ GROUP_COMMIT_TRANSACTIONS: "8" });
  elsewhere = new TestClient(other.port, s.apiKey);
  holder = await mysql.createConnection(s.databaseUrl);
});
afterAll(async () => {
  elsewhere?.close();
  await holder?.end();
  await s?.stop();
});

const codeOf = (e: unknown) => decodeStatusDetails((e as ServiceError).metadata).detail?.code ?? String(e);

async function settleAll<T>(calls: Array<Promise<T>>): Promise<{ ok: T[]; codes: string[] }> {
  const results = await Promise.allSettled(calls);
  return {
    ok: results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : [])),
    codes: results.flatMap((r) => (r.status === "rejected" ? [codeOf(r.reason)] : [])),
  };
}

/**
 * The overlap made certain: `lock` (a locking read) runs in the holder's transaction, then the
 * calls are sent, and the holder lets go only once exactly `waiters` transactions wait for its
 * lock — every call is then inside its transaction at the same point, and none has committed.
 */
async function whileHeld(
  lock: { sql: string; params: unknown[] },
  waiters: number,
  what: string,
  send: () => Array<Promise<unknown>>,
): Promise<Array<PromiseSettledResult<unknown>>> {
  await holder.query("BEGIN");
  try {
    await holder.query(lock.sql, lock.params);
    const results = Promise.allSettled(send());
    await untilLockWaiters(holder, waiters, what);
    await holder.query("ROLLBACK");
    return await results;
  } catch (error) {
    await holder.query("ROLLBACK");
    throw error;
  }
}

async function customerPkOf(customerId: string): Promise<string> {
  const [rows] = await holder.query<RowDataPacket[]>("SELECT id FROM customers WHERE customer_id = ?", [customerId]);
  return String(rows[0]?.id);
}

async function expectLedgerConsistent() {
  expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
}

describe("concurrency on one customer", () => {
  it("64 concurrent freezes of 30 against 1000: exactly 33 succeed, 31 insufficient, 10 left", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 1000n });
    const { ok, codes } = await settleAll(
      Array.from({ length: 64 }, () => s.client.call("freeze", { customerId, transactionId: uid("hold"), amount: 30n })),
    );
    expect(ok).toHaveLength(33);
    expect(codes).toEqual(Array(31).fill("insufficient_balance"));
    const c = await s.client.call("getCustomer", { customerId });
    expect(c.balance).toEqual({ total: 1000n, used: 0n, frozen: 990n, available: 10n });
    await expectLedgerConsistent();
  });

  it("50 concurrent identical deposits with one key: one credit, 49 replays", async () => {
    const customerId = uid("cust");
    const idempotencyKey = uid("dep");
    const { ok, codes } = await settleAll(
      Array.from({ length: 50 }, () => s.client.call("deposit", { customerId, amount: 70n, idempotencyKey })),
    );
    expect(codes).toEqual([]);
    expect(ok.filter((r) => !r.isIdempotentReplay)).toHaveLength(1);
    expect(ok.filter((r) => r.isIdempotentReplay)).toHaveLength(49);
    const original = ok.find((r) => !r.isIdempotentReplay);
    for (const r of ok) expect({ ...r, isIdempotentReplay: false }).toEqual(original);
    const c = await s.client.call("getCustomer", { customerId });
    expect(c.balance).toEqual({ total: 70n, used: 0n, frozen: 0n, available: 70n });
    await expectLedgerConsistent();
  });

  it("consume and unfreeze of one hold on two instances, both waiting for the customer's lock: exactly one wins", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 1000n });
    const customerPk = await customerPkOf(customerId);
    const wins = { consume: 0, unfreeze: 0 };
    for (let round = 0; round < 10; round++) {
      const transactionId = uid("hold");
      await s.client.call("freeze", { customerId, transactionId, amount: 100n });
      // The consume on the instance that froze it, the unfreeze on the other: only the database's
      // lock on the customer stands between them.
      const [consume, unfreeze] = await whileHeld(
        { sql: "SELECT id FROM customers WHERE id = ? FOR UPDATE", params: [customerPk] },
        2,
        "the consume and the unfreeze to wait for the customer",
        () => [s.client.call("consume", { transactionId, actualAmount: 60n }), elsewhere.call("unfreeze", { transactionId })],
      );
      const outcome = [consume, unfreeze].map((r) => (r?.status === "fulfilled" ? "ok" : codeOf(r?.reason)));
      const t = await s.client.call("getTransaction", { transactionId });
      if (t.status === TransactionStatus.TRANSACTION_STATUS_CONSUMED) {
        wins.consume += 1;
        expect(outcome).toEqual(["ok", "no_unfreezable_records"]);
        expect([t.consumedAmount, t.returnedAmount]).toEqual([60n, 40n]);
      } else {
        wins.unfreeze += 1;
        expect(outcome).toEqual(["no_consumable_freeze_records", "ok"]);
        expect([t.status, t.consumedAmount]).toEqual([TransactionStatus.TRANSACTION_STATUS_UNFROZEN, 0n]);
      }
    }
    expect(wins.consume + wins.unfreeze).toBe(10);
    const used = 60n * BigInt(wins.consume);
    const c = await s.client.call("getCustomer", { customerId });
    expect(c.balance).toEqual({ total: 1000n, used, frozen: 0n, available: 1000n - used });
    await expectLedgerConsistent();
  });

  it("one transaction id deducted for 8 customers at once, all 8 past their check: one applies, 7 transaction_conflict", async () => {
    const customers = Array.from({ length: 8 }, () => uid("cust"));
    const transactionId = uid("shared");
    await Promise.all(customers.map((customerId) => s.client.call("deposit", { customerId, amount: 100n })));
    // The holder looks for the id under its UNIQUE key and locks the gap where it would go: each
    // Deduct (one transaction per customer on that instance) has found no such id and waits to
    // insert it there, so all 8 meet on the key when the holder lets go.
    const results = await whileHeld(
      { sql: "SELECT id FROM transactions WHERE project_id = 1 AND transaction_id = ? FOR UPDATE", params: [transactionId] },
      8,
      "the 8 Deducts to wait to insert the transaction",
      () => customers.map((customerId) => elsewhere.call("deduct", { customerId, transactionId, amount: 10n })),
    );
    const outcomes = results.map((r) => (r.status === "fulfilled" ? "ok" : codeOf(r.reason)));
    expect([...outcomes].sort()).toEqual(["ok", ...Array(7).fill("transaction_conflict")]);
    const winner = customers[outcomes.indexOf("ok")];
    for (const customerId of customers) {
      const used = customerId === winner ? 10n : 0n;
      expect((await s.client.call("getCustomer", { customerId })).balance).toEqual({
        total: 100n,
        used,
        frozen: 0n,
        available: 100n - used,
      });
    }
    expect((await s.client.call("getTransaction", { transactionId })).customerId).toBe(winner);
    await expectLedgerConsistent();
  });
});

describe("verify while the service writes", () => {
  it("reads one snapshot: every run during 64 concurrent writers reports no problem", async () => {
    const customers = Array.from({ length: 8 }, () => uid("verify-live"));
    for (const customerId of customers) await s.client.call("deposit", { customerId, amount: 1_000_000n });
    let writing = true;
    const writers = Array.from({ length: 64 }, async (_, i) => {
      const customerId = customers[i % customers.length] as string;
      while (writing) {
        const transactionId = uid("vl");
        await s.client.call("freeze", { customerId, transactionId, amount: 3n });
        await s.client.call("consume", { transactionId, actualAmount: 2n });
        await s.client.call("deposit", { customerId, amount: 1n });
      }
    });
    const reports = [];
    try {
      for (let run = 0; run < 5; run++) reports.push((await verifyLedger(s.app.database.db)).problems);
    } finally {
      writing = false;
      await Promise.all(writers);
    }
    expect(reports).toEqual([[], [], [], [], []]);
  });
});
