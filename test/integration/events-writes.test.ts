import type { SetAlertResponse } from "../../gen/velobase/billing/v1/alerts.js";
// Issue 17 end to end: events of real writes (gRPC), watched as they commit.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/velobase/billing/v1/events.js";
import { alertCall, TestWatcher } from "../support/events.js";
import { startTestServer, type TestServer } from "../support/server.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

const CUSTOMERS = 10;
const WRITERS = 64;
const WRITES_PER_WRITER = 20;

/** Per customer: the sequences seen (deduplicated by event id) and the last balance_after. */
function byCustomer(events: readonly Event[]) {
  const seen = new Set<string>();
  const result = new Map<string, { sequences: bigint[]; last: Event["balanceAfter"] }>();
  for (const e of events) {
    if (seen.has(e.id) || e.customerId === undefined) continue;
    seen.add(e.id);
    const c = result.get(e.customerId) ?? { sequences: [], last: undefined };
    c.sequences.push(...e.entries.map((entry) => entry.sequence));
    if (e.balanceAfter) c.last = e.balanceAfter;
    result.set(e.customerId, c);
  }
  return result;
}

describe("events of real writes", () => {
  it("64 writers over 10 customers: a watcher from the start sees every sequence 1..n once per customer, in order, and the last balance_after is GetCustomer's", async () => {
    const customers = Array.from({ length: CUSTOMERS }, (_, i) => `e2e-${i}`);
    for (const customerId of customers) await s.client.call("deposit", { customerId, amount: 1_000_000n });
    const watcher = new TestWatcher(s.app.port, s.apiKey, {});
    let resumed: TestWatcher | null = null;
    await Promise.all(
      Array.from({ length: WRITERS }, async (_, w) => {
        for (let n = 0; n < WRITES_PER_WRITER; n++) {
          const customerId = customers[(w + n) % CUSTOMERS] as string;
          const transactionId = `e2e-${w}-${n}`;
          if (n % 3 === 0) await s.client.call("deposit", { customerId, amount: 7n, idempotencyKey: transactionId });
          else if (n % 3 === 1) await s.client.call("deduct", { customerId, transactionId, amount: 3n });
          else {
            await s.client.call("freeze", { customerId, transactionId, amount: 5n });
            await s.client.call("consume", { transactionId, actualAmount: 2n });
          }
          // Halfway, a second watcher disconnects and resumes from its last cursor.
          if (w === 0 && n === WRITES_PER_WRITER / 2) {
            const first = new TestWatcher(s.app.port, s.apiKey, {});
            await first.count(1);
            first.close();
            resumed = new TestWatcher(s.app.port, s.apiKey, { cursor: first.events.at(-1)?.cursor ?? "" });
            resumed.events.unshift(...first.events);
          }
        }
      }),
    );
    const [rows] = await s.app.database.pool.query("SELECT COUNT(*) AS n FROM events");
    const total = Number((rows as { n: number }[])[0]?.n);
    await watcher.until((events) => new Set(events.map((e) => e.id)).size >= total);
    const seen = byCustomer(watcher.events);
    for (const customerId of customers) {
      const c = seen.get(customerId);
      const expected = Array.from({ length: c?.sequences.length ?? 0 }, (_, i) => BigInt(i + 1));
      expect(c?.sequences).toEqual(expected);
      const customer = await s.client.call("getCustomer", { customerId });
      expect(c?.last).toEqual(customer.balance);
    }
    const again = resumed as TestWatcher | null;
    if (!again) throw new Error("the resuming watcher did not start");
    await again.until((events) => new Set(events.map((e) => e.id)).size >= total);
    expect(new Set(again.events.map((e) => e.id))).toEqual(new Set(watcher.events.map((e) => e.id)));
    watcher.close();
    again.close();
  });

  it("100 concurrent deducts crossing one threshold emit exactly one balance.low; a deposit back emits one balance.recovered", async () => {
    const customerId = "e2e-alert";
    await s.client.call("deposit", { customerId, amount: 1000n });
    const { alert } = (await alertCall(s.app.port, s.apiKey, "setAlert", { customerId, threshold: 500n })) as SetAlertResponse;
    const watcher = new TestWatcher(s.app.port, s.apiKey, { customerId, types: ["balance.low", "balance.depleted", "balance.recovered"] });
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => s.client.call("deduct", { customerId, transactionId: `e2e-alert-${i}`, amount: 7n })),
    );
    await s.client.call("deposit", { customerId, amount: 1000n, idempotencyKey: "e2e-alert-back" });
    await watcher.until((events) => events.some((e) => e.type === "balance.recovered"));
    expect(watcher.events.map((e) => e.type)).toEqual(["balance.low", "balance.recovered"]);
    // 1,000 − 7 × 71 = 503 is the last balance at or above 500; the 72nd deduct crosses it. After
    // the 100, 300 is left, and the deposit brings 1,300.
    const crossing = { alert_id: String(alert?.alertId), threshold: "500", credit_type: "" };
    expect(watcher.events.map((e) => e.data)).toEqual([
      { ...crossing, available_before: "503", available: "496" },
      { ...crossing, available_before: "300", available: "1300" },
    ]);
    watcher.close();
  });

  it("a refund's event names its refund_id (its transaction_id is the charge's); a void's, its void_id and the deposit's record_id", async () => {
    const customerId = "e2e-reversals";
    const deposit = await s.client.call("deposit", { customerId, amount: 100n });
    await s.client.call("deduct", { customerId, transactionId: "e2e-charge", amount: 30n });
    const watcher = new TestWatcher(s.app.port, s.apiKey, { customerId, types: ["ledger.refund", "ledger.void"] });
    await s.client.call("refund", { transactionId: "e2e-charge", refundId: "e2e-refund-1", amount: 10n });
    await s.client.call("voidDeposit", { customerId, recordId: deposit.ledgerEntryId, voidId: "e2e-void-1", amount: 5n });
    await watcher.until((events) => events.length >= 2);
    expect(watcher.events.map((e) => [e.type, e.transactionId, e.data])).toEqual([
      ["ledger.refund", "e2e-charge", { refund_id: "e2e-refund-1" }],
      ["ledger.void", undefined, { void_id: "e2e-void-1", record_id: deposit.ledgerEntryId }],
    ]);
    watcher.close();
  });
});
