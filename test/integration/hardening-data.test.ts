import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLedger } from "../../src/billing/verify.js";
import { expectError } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Issue 9: each test replays an input of the hostile-input probe or the code review and asserts
// what a client receives, then that the ledger still verifies.

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

const expectLedgerVerifies = async () => expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);

/** The largest metadata the documented limits allow: 32 keys of 64 and values of 1024 code units. */
function largestMetadata(unit: string): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (let i = 0; i < 32; i++) metadata[String(i).padStart(2, "0") + unit.repeat(62)] = unit.repeat(1024);
  return metadata;
}

describe("finding 2: metadata inside the documented limits is stored", () => {
  for (const [name, unit] of [
    ["3-byte characters", "中"],
    ["control characters JSON escapes 6 bytes each", "\u0001"],
  ] as const) {
    it(`stores 32 values of 1024 ${name} on Deposit and Deduct`, async () => {
      const customerId = uid("cust");
      const metadata = largestMetadata(unit);
      const d = await s.client.call("deposit", { customerId, amount: 100n, metadata });
      expect(d.balance?.available).toBe(100n);
      const transactionId = uid("tx");
      const r = await s.client.call("deduct", { customerId, transactionId, amount: 40n, metadata });
      expect(r.balance?.available).toBe(60n);
      expect((await s.client.call("getCustomer", { customerId })).metadata).toEqual(metadata);
      const ledger = await s.client.call("listLedgerEntries", { customerId });
      expect(ledger.entries.map((e) => [e.amount, e.metadata])).toEqual([
        [40n, metadata],
        [100n, metadata],
      ]);
      await expectLedgerVerifies();
    });
  }
});

const INT64_MAX = 2n ** 63n - 1n;
const AMOUNT_MAX = 10n ** 15n;

/** Runs `count` calls of `call(i)` over `concurrency` workers. */
async function inParallel(count: number, concurrency: number, call: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await call(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

describe("a customer whose default account is filled to int64 max", () => {
  const customerId = uid("cust");
  const firstKey = uid("dep");
  let first: Awaited<ReturnType<typeof s.client.call<"deposit">>>;
  beforeAll(async () => {
    // The probe's input: 9,223 deposits of 10^15, then 372036854775807 more.
    first = await s.client.call("deposit", { customerId, amount: AMOUNT_MAX, idempotencyKey: firstKey });
    await inParallel(9_222, 16, () => s.client.call("deposit", { customerId, amount: AMOUNT_MAX }));
    const last = await s.client.call("deposit", { customerId, amount: 372_036_854_775_807n });
    expect(last.account?.total).toBe(INT64_MAX);
    expect(last.balance).toEqual({ total: INT64_MAX, used: 0n, frozen: 0n, available: INT64_MAX });
  }, 120_000);

  it("finding 5: replays a deposit repeated after its account became full", async () => {
    const replay = await s.client.call("deposit", { customerId, amount: AMOUNT_MAX, idempotencyKey: firstKey });
    expect(replay).toEqual({ ...first, isIdempotentReplay: true });
    const info = await expectError(
      s.client.call("deposit", { customerId, amount: 1n, idempotencyKey: uid("dep") }),
      "invalid_argument",
      undefined,
      { messageFree: true },
    );
    expect(info.field).toBe("amount");
    await expectLedgerVerifies();
  });
});
