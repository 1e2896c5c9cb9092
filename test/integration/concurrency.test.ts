import type { ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLedger } from "../../src/operations/verify.js";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ DB_POOL_SIZE: "32" });
});
afterAll(async () => {
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

  it("concurrent consume and unfreeze of one hold: exactly one wins", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 1000n });
    for (let round = 0; round < 10; round++) {
      const transactionId = uid("hold");
      await s.client.call("freeze", { customerId, transactionId, amount: 100n });
      const results = await Promise.allSettled([
        s.client.call("consume", { transactionId, actualAmount: 60n }),
        s.client.call("unfreeze", { transactionId }),
      ]);
      const winners = results.filter((r) => r.status === "fulfilled");
      expect(winners).toHaveLength(1);
      const loser = results.find((r) => r.status === "rejected");
      const t = await s.client.call("getTransaction", { transactionId });
      expect(codeOf(loser?.status === "rejected" ? loser.reason : null)).toBe(
        t.consumedAmount === 60n ? "no_unfreezable_records" : "no_consumable_freeze_records",
      );
    }
    const c = await s.client.call("getCustomer", { customerId });
    expect(c.balance?.frozen).toBe(0n);
    expect((c.balance?.used ?? 0n) % 60n).toBe(0n);
    await expectLedgerConsistent();
  });

  it("different customers and cross-customer key races never double-apply", async () => {
    const customers = Array.from({ length: 8 }, () => uid("cust"));
    const transactionId = uid("shared");
    await Promise.all(customers.map((customerId) => s.client.call("deposit", { customerId, amount: 100n })));
    const { ok, codes } = await settleAll(
      customers.map((customerId) => s.client.call("deduct", { customerId, transactionId, amount: 10n })),
    );
    expect(ok).toHaveLength(1);
    expect(codes).toEqual(Array(7).fill("transaction_conflict"));
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
