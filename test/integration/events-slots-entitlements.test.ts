import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uid } from "../support/fixtures.js";
import { type HttpTestClient, httpClientFor, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Slot and entitlement writes put their own event in the outbox, in their transaction.
let s: TestServer;
let http: HttpTestClient;
beforeAll(async () => {
  s = await startTestServer();
  http = await httpClientFor(s);
});
afterAll(async () => {
  await s?.stop();
});

interface Item {
  readonly type: string;
  readonly customer_id: string | null;
  readonly entries: unknown[];
  readonly data?: Record<string, string>;
}

/** The customer's events once `count` of them are stamped (the stamper orders them after COMMIT). */
async function eventsOf(customerId: string, count: number): Promise<Item[]> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const page = ok<{ items: Item[] }>(await http.get(`/v1/events?customer_id=${customerId}&limit=100`));
    if (page.items.length >= count) return page.items;
    await sleep(10);
  }
  throw new Error(`fewer than ${count} events for ${customerId}`);
}

describe("events of slot and entitlement writes", () => {
  it("emits slot.grant, slot.claim, slot.release, slot.revoke, entitlement.set and entitlement.remove once each, with no entries", async () => {
    const customer = uid("evs");
    ok(await http.post("/v1/slot/grant", { customer_id: customer, wallet: "ip", amount: 3 }));
    const claimed = ok<{ holding_id: number }>(
      await http.post("/v1/slot/claim", { customer_id: customer, wallet: "ip", resource_id: "r1", amount: 1 }),
    );
    ok(await http.post("/v1/slot/release", { customer_id: customer, wallet: "ip", resource_id: "r1" }));
    // A replay writes nothing, so it emits nothing.
    ok(await http.post("/v1/slot/release", { customer_id: customer, wallet: "ip", resource_id: "r1" }));
    ok(await http.post("/v1/slot/revoke", { customer_id: customer, wallet: "ip", amount: 1 }));
    ok(await http.post("/v1/entitlement/set", { customer_id: customer, feature_key: "seats", value: "5" }));
    ok(await http.post("/v1/entitlement/remove", { customer_id: customer, feature_key: "seats" }));
    const items = await eventsOf(customer, 6);
    expect(items.map((e) => e.type)).toEqual([
      "slot.grant",
      "slot.claim",
      "slot.release",
      "slot.revoke",
      "entitlement.set",
      "entitlement.remove",
    ]);
    expect(items.every((e) => e.customer_id === customer && e.entries.length === 0)).toBe(true);
    // The claim's holding is new: its event names it by the id the claim answered, as the release's does.
    const holdingId = String(claimed.holding_id);
    expect(holdingId).toMatch(/^[1-9]\d*$/);
    expect(items[1]?.data).toMatchObject({ wallet: "ip", resource_id: "r1", capacity: "3", in_use: "1", holding_id: holdingId });
    expect(items[2]?.data).toMatchObject({ resource_id: "r1", in_use: "0", holding_id: holdingId });
  });
});
