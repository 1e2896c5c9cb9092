import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EntitlementEventType } from "../../gen/velobase/billing/v1/entitlements.js";
import { expectError } from "../support/client.js";
import { DAY, ts, uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { slotClientsFor } from "../support/slot-clients.js";

let s: TestServer;
let clients: ReturnType<typeof slotClientsFor>;
const ent = () => clients.entitlements;

beforeAll(async () => {
  s = await startTestServer();
  clients = slotClientsFor(s.app.port, s.apiKey);
});
afterAll(async () => {
  clients?.close();
  await s?.stop();
});

/** A customer that billing knows (entitlements never create one). */
async function customer(): Promise<string> {
  const customerId = uid("cust");
  await s.client.call("deposit", { customerId, amount: 1n });
  return customerId;
}

describe("set and get", () => {
  it("creates, then replaces, answering the old value; get returns the current one", async () => {
    const customerId = await customer();
    const now = s.clock.now();
    const created = await ent().call("setEntitlement", {
      customerId,
      featureKey: "model",
      value: "gpt-4",
      validUntil: ts(now + DAY),
      source: "plan",
      description: "pro plan",
      metadata: { plan: "pro" },
    });
    expect(created).toEqual({
      entitlement: {
        entitlementId: expect.stringMatching(/^\d+$/),
        featureKey: "model",
        value: "gpt-4",
        validFrom: undefined,
        validUntil: ts(now + DAY),
        source: "plan",
        description: "pro plan",
        metadata: { plan: "pro" },
        isActive: true,
        hasMetadata: true,
      },
      isCreated: true,
      oldValue: undefined,
    });
    const replaced = await ent().call("setEntitlement", { customerId, featureKey: "model", value: "gpt-5" });
    expect(replaced).toEqual({
      entitlement: {
        entitlementId: created.entitlement?.entitlementId,
        featureKey: "model",
        value: "gpt-5",
        validFrom: undefined,
        validUntil: undefined,
        source: undefined,
        description: undefined,
        metadata: {},
        isActive: true,
        hasMetadata: false,
      },
      isCreated: false,
      oldValue: "gpt-4",
    });
    expect(await ent().call("getEntitlement", { customerId, featureKey: "model" })).toEqual({ entitlement: replaced.entitlement });
    expect(await ent().call("getEntitlement", { customerId, featureKey: "never" })).toEqual({ entitlement: undefined });
    expect(await ent().call("getEntitlement", { customerId: uid("nobody"), featureKey: "model" })).toEqual({ entitlement: undefined });
  });

  it("accepts a past valid_until; get then answers nothing", async () => {
    const customerId = await customer();
    const now = s.clock.now();
    const set = await ent().call("setEntitlement", { customerId, featureKey: "beta", value: "on", validUntil: ts(now - DAY) });
    expect(set.entitlement?.isActive).toBe(false);
    expect(await ent().call("getEntitlement", { customerId, featureKey: "beta" })).toEqual({ entitlement: undefined });
  });

  it("a future valid_from is answered as not active yet", async () => {
    const customerId = await customer();
    await ent().call("setEntitlement", { customerId, featureKey: "later", value: "on", validFrom: ts(s.clock.now() + DAY) });
    expect((await ent().call("getEntitlement", { customerId, featureKey: "later" })).entitlement?.isActive).toBe(false);
  });

  it("refuses unknown customers and malformed requests with their codes", async () => {
    const customerId = await customer();
    const now = s.clock.now();
    await expectError(
      ent().call("setEntitlement", { customerId: uid("nobody"), featureKey: "k", value: "v" }),
      "entitlement_customer_not_found",
    );
    await expectError(ent().call("setEntitlement", { featureKey: "k", value: "v" }), "customer_id_required", "customer_id is required.");
    await expectError(ent().call("setEntitlement", { customerId, value: "v" }), "feature_key_required");
    await expectError(ent().call("setEntitlement", { customerId, featureKey: "k" }), "value_required");
    await expectError(
      ent().call("setEntitlement", { customerId, featureKey: "k", value: "v", validFrom: { seconds: 0n, nanos: 2_000_000_000 } }),
      "invalid_valid_from",
    );
    await expectError(
      ent().call("setEntitlement", { customerId, featureKey: "k", value: "v", validUntil: { seconds: -(10n ** 12n), nanos: 0 } }),
      "invalid_valid_until",
    );
    await expectError(
      ent().call("setEntitlement", { customerId, featureKey: "k", value: "v", validFrom: ts(now), validUntil: ts(now) }),
      "entitlement_validation_error",
    );
    await expectError(
      ent().call("setEntitlement", { customerId, featureKey: "k k", value: "v" }),
      "invalid_argument",
      "feature_key must be 1-128 characters of [A-Za-z0-9_.:@-].",
    );
    await expectError(ent().call("getEntitlement", { customerId }), "feature_key_required");
    await expectError(ent().call("removeEntitlement", { customerId }), "feature_key_required");
  });
});

describe("list and remove", () => {
  it("lists by feature key, hides expired ones unless asked, then flags them", async () => {
    const customerId = await customer();
    const now = s.clock.now();
    await ent().call("setEntitlement", { customerId, featureKey: "seats", value: "10" });
    await ent().call("setEntitlement", { customerId, featureKey: "model", value: "gpt-4", validUntil: ts(now + 1000) });
    await ent().call("setEntitlement", { customerId, featureKey: "beta", value: "on", validUntil: ts(now + 2000) });
    const listed = async (request: { featureKeys?: string[]; includeExpired?: boolean }) =>
      (await ent().call("listEntitlements", { customerId, ...request })).items.map((e) => [e.featureKey, e.isActive]);
    expect(await listed({})).toEqual([
      ["beta", true],
      ["model", true],
      ["seats", true],
    ]);
    s.clock.advance(1000);
    expect(await listed({})).toEqual([
      ["beta", true],
      ["seats", true],
    ]);
    expect(await listed({ includeExpired: true })).toEqual([
      ["beta", true],
      ["model", false],
      ["seats", true],
    ]);
    expect(await listed({ featureKeys: ["seats", "model"], includeExpired: true })).toEqual([
      ["model", false],
      ["seats", true],
    ]);
    expect(await ent().call("listEntitlements", { customerId: uid("nobody") })).toEqual({ items: [] });
  });

  it("remove answers the old value once, then nothing; get then answers nothing", async () => {
    const customerId = await customer();
    await ent().call("setEntitlement", { customerId, featureKey: "model", value: "gpt-4" });
    expect(await ent().call("removeEntitlement", { customerId, featureKey: "model" })).toEqual({ removed: true, oldValue: "gpt-4" });
    expect(await ent().call("removeEntitlement", { customerId, featureKey: "model" })).toEqual({ removed: false, oldValue: undefined });
    expect(await ent().call("getEntitlement", { customerId, featureKey: "model" })).toEqual({ entitlement: undefined });
    const again = await ent().call("setEntitlement", { customerId, featureKey: "model", value: "gpt-5" });
    expect(again).toMatchObject({ isCreated: true, oldValue: undefined });
  });
});

describe("events", () => {
  it("lists SET and REMOVE newest first with filters, a cursor and the total count", async () => {
    const customerId = await customer();
    const start = s.clock.now();
    await ent().call("setEntitlement", { customerId, featureKey: "model", value: "a", source: "plan", description: "first" });
    s.clock.advance(1000);
    await ent().call("setEntitlement", { customerId, featureKey: "model", value: "b" });
    s.clock.advance(1000);
    await ent().call("setEntitlement", { customerId, featureKey: "seats", value: "3" });
    s.clock.advance(1000);
    await ent().call("removeEntitlement", { customerId, featureKey: "model" });

    const all = await ent().call("listEntitlementEvents", { customerId });
    expect(all).toMatchObject({ totalCount: 4n, hasMore: false, nextCursor: "" });
    expect(all.items.map((e) => [e.type, e.featureKey, e.oldValue ?? null, e.newValue ?? null])).toEqual([
      [EntitlementEventType.ENTITLEMENT_EVENT_TYPE_REMOVE, "model", "b", null],
      [EntitlementEventType.ENTITLEMENT_EVENT_TYPE_SET, "seats", null, "3"],
      [EntitlementEventType.ENTITLEMENT_EVENT_TYPE_SET, "model", "a", "b"],
      [EntitlementEventType.ENTITLEMENT_EVENT_TYPE_SET, "model", null, "a"],
    ]);
    expect(all.items[3]).toMatchObject({ source: "plan", description: "first", createdAt: ts(start) });

    const page1 = await ent().call("listEntitlementEvents", { customerId, featureKey: "model", limit: 2 });
    expect(page1).toMatchObject({ totalCount: 3n, hasMore: true });
    const page2 = await ent().call("listEntitlementEvents", { customerId, featureKey: "model", limit: 2, cursor: page1.nextCursor });
    expect(page2).toMatchObject({ totalCount: 3n, hasMore: false, nextCursor: "" });
    expect([...page1.items, ...page2.items].map((e) => e.newValue ?? null)).toEqual([null, "b", "a"]);

    const removes = await ent().call("listEntitlementEvents", { customerId, types: [EntitlementEventType.ENTITLEMENT_EVENT_TYPE_REMOVE] });
    expect(removes.items.map((e) => e.featureKey)).toEqual(["model"]);
    const window = await ent().call("listEntitlementEvents", { customerId, fromAt: ts(start + 1000), toAt: ts(start + 3000) });
    expect(window.items.map((e) => e.newValue)).toEqual(["3", "b"]);

    await expectError(ent().call("listEntitlementEvents", { customerId, limit: 0 }), "invalid_limit");
    await expectError(ent().call("listEntitlementEvents", { customerId, fromAt: { seconds: 0n, nanos: -5 } }), "invalid_from_at");
    await expectError(ent().call("listEntitlementEvents", { customerId, toAt: { seconds: 10n ** 13n, nanos: 0 } }), "invalid_to_at");
    await expectError(
      ent().call("listEntitlementEvents", { customerId, cursor: "nope" }),
      "invalid_page_token",
      "cursor is not valid for this request.",
    );
    await expectError(
      ent().call("listEntitlementEvents", { customerId, types: [EntitlementEventType.ENTITLEMENT_EVENT_TYPE_UNSPECIFIED] }),
      "invalid_argument",
      "types holds an unknown value.",
    );
  });

  it("entitlement events are append-only", async () => {
    await expect(s.app.database.pool.query("UPDATE entitlement_events SET new_value = 'x'")).rejects.toThrow(/append-only/);
    await expect(s.app.database.pool.query("DELETE FROM entitlement_events")).rejects.toThrow(/append-only/);
  });
});
