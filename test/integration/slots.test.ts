import type { ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PoolStatus, SlotEventType } from "../../gen/velobase/billing/v1/slots.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { rethrowGuardFailure } from "../../src/store/row-count-guard.js";
import { runTransaction } from "../../src/store/run-transaction.js";
import { insertSlotEventSql, readPools, releaseHoldingSql, updatePoolSql } from "../../src/store/slots-store.js";
import { isRowCountGuardFailure } from "../../src/store/sql-errors.js";
import { expectError } from "../support/client.js";
import { ts, uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { slotClientsFor } from "../support/slot-clients.js";

let s: TestServer;
let clients: ReturnType<typeof slotClientsFor>;
const slots = () => clients.slots;

beforeAll(async () => {
  s = await startTestServer({ DB_POOL_SIZE: "32" });
  clients = slotClientsFor(s.app.port, s.apiKey);
});
afterAll(async () => {
  clients?.close();
  await s?.stop();
});

const pool = (over: Record<string, unknown>) => ({
  poolId: expect.stringMatching(/^\d+$/),
  wallet: "ip",
  source: "default",
  status: PoolStatus.POOL_STATUS_ACTIVE,
  ...over,
});

async function expectPoolsConsistent() {
  expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
}

describe("grant and revoke capacity", () => {
  it("grant creates the customer and the pool, and adds to it", async () => {
    const customerId = uid("cust");
    const first = await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 10n });
    expect(first).toEqual({ pool: pool({ capacity: 10n, inUse: 0n, available: 10n }), isIdempotentReplay: false });
    const second = await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 5n, source: "promo" });
    expect(second.pool).toEqual(pool({ source: "promo", capacity: 5n, inUse: 0n, available: 5n }));
    const third = await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 2n });
    expect(third.pool).toEqual({ ...first.pool, capacity: 12n, available: 12n });
    const customer = await s.client.call("getCustomer", { customerId });
    expect(customer.customerId).toBe(customerId);
  });

  it("a repeated grant with its key replays with the capacity unchanged; other parameters conflict", async () => {
    const customerId = uid("cust");
    const idempotencyKey = uid("grant");
    const request = { customerId, wallet: "seat", amount: 3n, idempotencyKey, description: "plan upgrade" };
    const original = await slots().call("grantCapacity", request);
    const replay = await slots().call("grantCapacity", request);
    expect(replay).toEqual({ ...original, isIdempotentReplay: true });
    const pools = await slots().call("listPools", { customerId });
    expect(pools.pools.map((p) => p.capacity)).toEqual([3n]);
    await expectError(slots().call("grantCapacity", { ...request, amount: 4n }), "idempotency_conflict");
    await expectError(slots().call("revokeCapacity", request), "idempotency_conflict");
    await expectError(slots().call("grantCapacity", { ...request, customerId: uid("other") }), "transaction_conflict");
  });

  it("revoke shrinks a pool, never below in_use; an unknown pool is slot_pool_not_found", async () => {
    const customerId = uid("cust");
    await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 5n });
    await slots().call("claim", { customerId, wallet: "ip", resourceId: "10.0.0.1", amount: 3n });
    const revoked = await slots().call("revokeCapacity", { customerId, wallet: "ip", amount: 2n });
    expect(revoked).toEqual({ pool: pool({ capacity: 3n, inUse: 3n, available: 0n }), isIdempotentReplay: false });
    const facts = await expectError(slots().call("revokeCapacity", { customerId, wallet: "ip", amount: 1n }), "slot_capacity_below_in_use");
    expect(facts).toEqual({ requested: "1", capacity: "3", in_use: "3" });
    await expectError(slots().call("revokeCapacity", { customerId, wallet: "ip", source: "promo", amount: 1n }), "slot_pool_not_found");
    await expectError(slots().call("revokeCapacity", { customerId: uid("nobody"), wallet: "ip", amount: 1n }), "slot_pool_not_found");
    await expectPoolsConsistent();
  });

  it("rejects malformed requests", async () => {
    await expectError(slots().call("grantCapacity", { wallet: "ip", amount: 1n }), "customer_id_required", "customer_id is required.");
    await expectError(
      slots().call("grantCapacity", { customerId: "c", wallet: "ip", amount: 0n }),
      "amount_must_be_positive",
      "amount must be a positive integer.",
    );
    await expectError(slots().call("grantCapacity", { customerId: "c", amount: 1n }), "wallet_required", "wallet is required.");
    await expectError(
      slots().call("claim", { customerId: "c", wallet: "ip", resourceId: "" }),
      "resource_id_required",
      "resource_id is required.",
    );
  });
});

describe("claim and release", () => {
  it("claims from the default pool first, then the oldest, never split", async () => {
    const customerId = uid("cust");
    await slots().call("grantCapacity", { customerId, wallet: "ip", source: "promo", amount: 4n });
    await slots().call("grantCapacity", { customerId, wallet: "ip", source: "addon", amount: 4n });
    await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 2n });
    const a = await slots().call("claim", { customerId, wallet: "ip", resourceId: "a", amount: 2n });
    expect(a.pool).toEqual(pool({ capacity: 2n, inUse: 2n, available: 0n }));
    const b = await slots().call("claim", { customerId, wallet: "ip", resourceId: "b", amount: 3n, description: "vm b" });
    expect(b.pool).toEqual(pool({ source: "promo", capacity: 4n, inUse: 3n, available: 1n }));
    const c = await slots().call("claim", { customerId, wallet: "ip", resourceId: "c", source: "addon" });
    expect(c.pool).toEqual(pool({ source: "addon", capacity: 4n, inUse: 1n, available: 3n }));
    const split = await expectError(
      slots().call("claim", { customerId, wallet: "ip", resourceId: "d", amount: 4n }),
      "slot_split_required",
    );
    expect(split).toEqual({ wallet: "ip", requested: "4", available: "4", largest_available: "3" });
    const short = await expectError(
      slots().call("claim", { customerId, wallet: "ip", resourceId: "d", amount: 5n }),
      "slot_insufficient_capacity",
    );
    expect(short).toEqual({ wallet: "ip", requested: "5", available: "4" });
    await expectError(slots().call("claim", { customerId, wallet: "gpu", resourceId: "d" }), "slot_pool_not_found");
    await expectError(slots().call("claim", { customerId, wallet: "ip", resourceId: "d", source: "nope" }), "slot_pool_not_found");
    await expectError(slots().call("claim", { customerId: uid("nobody"), wallet: "ip", resourceId: "d" }), "slot_pool_not_found");
    await expectError(slots().call("claim", { customerId, wallet: "ip", resourceId: "d", amount: -1n }), "amount_must_be_positive");
  });

  it("a second claim of a held resource returns the same holding and counts once", async () => {
    const customerId = uid("cust");
    await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 3n });
    const first = await slots().call("claim", { customerId, wallet: "ip", resourceId: "vm-1" });
    const again = await slots().call("claim", { customerId, wallet: "ip", resourceId: "vm-1" });
    expect(first.isIdempotentReplay).toBe(false);
    expect(again).toEqual({ ...first, isIdempotentReplay: true });
    expect(again.pool?.inUse).toBe(1n);
  });

  it("release gives the capacity back; twice is a replay; a never-held resource is slot_holding_not_found", async () => {
    const customerId = uid("cust");
    await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 2n });
    const claimed = await slots().call("claim", { customerId, wallet: "ip", resourceId: "vm-1", amount: 2n });
    const released = await slots().call("release", { customerId, wallet: "ip", resourceId: "vm-1" });
    expect(released).toEqual({
      pool: pool({ capacity: 2n, inUse: 0n, available: 2n }),
      holdingId: claimed.holdingId,
      isIdempotentReplay: false,
    });
    expect(await slots().call("release", { customerId, wallet: "ip", resourceId: "vm-1" })).toEqual({
      ...released,
      isIdempotentReplay: true,
    });
    const reclaimed = await slots().call("claim", { customerId, wallet: "ip", resourceId: "vm-1" });
    expect(reclaimed.holdingId).not.toBe(claimed.holdingId);
    expect(reclaimed.isIdempotentReplay).toBe(false);
    await expectError(slots().call("release", { customerId, wallet: "ip", resourceId: "vm-2" }), "slot_holding_not_found");
    await expectError(slots().call("release", { customerId: uid("nobody"), wallet: "ip", resourceId: "vm-1" }), "slot_holding_not_found");
    await expectPoolsConsistent();
  });

  it("a suspended pool is not claimed from", async () => {
    const customerId = uid("cust");
    const granted = await slots().call("grantCapacity", { customerId, wallet: "job", amount: 2n });
    await s.app.database.pool.query("UPDATE slot_pools SET status = 'SUSPENDED' WHERE id = ?", [granted.pool?.poolId]);
    await expectError(slots().call("claim", { customerId, wallet: "job", resourceId: "j1" }), "slot_insufficient_capacity");
  });
});

describe("concurrency", () => {
  it("64 concurrent claims on a pool of 10 give exactly 10 holdings", async () => {
    const customerId = uid("cust");
    await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 10n });
    const results = await Promise.allSettled(
      Array.from({ length: 64 }, (_, i) => slots().call("claim", { customerId, wallet: "ip", resourceId: `10.0.0.${i}` })),
    );
    const ok = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const codes = results.flatMap((r) =>
      r.status === "rejected" ? [decodeStatusDetails((r.reason as ServiceError).metadata).detail?.code ?? String(r.reason)] : [],
    );
    expect(ok).toHaveLength(10);
    expect(new Set(ok.map((r) => r.holdingId)).size).toBe(10);
    expect(codes).toEqual(Array(54).fill("slot_insufficient_capacity"));
    const { pools } = await slots().call("listPools", { customerId });
    expect(pools).toEqual([pool({ capacity: 10n, inUse: 10n, available: 0n })]);
    const [held] = (await s.app.database.pool.query(
      "SELECT COUNT(*) AS n FROM slot_holdings h JOIN customers c ON c.id = h.customer_pk WHERE c.customer_id = ? AND h.held_resource_id IS NOT NULL",
      [customerId],
    )) as unknown as [Array<{ n: number }>];
    expect(Number(held[0]?.n)).toBe(10);
    await expectPoolsConsistent();
  });

  it("64 concurrent claims of one resource make one holding", async () => {
    const customerId = uid("cust");
    await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 10n });
    const all = await Promise.all(
      Array.from({ length: 64 }, () => slots().call("claim", { customerId, wallet: "ip", resourceId: "same" })),
    );
    expect(new Set(all.map((r) => r.holdingId)).size).toBe(1);
    expect(all.filter((r) => !r.isIdempotentReplay)).toHaveLength(1);
    const { pools } = await slots().call("listPools", { customerId });
    expect(pools[0]?.inUse).toBe(1n);
  });
});

describe("pools and events", () => {
  it("lists pools in claim order, optionally of one wallet", async () => {
    const customerId = uid("cust");
    await slots().call("grantCapacity", { customerId, wallet: "ip", source: "promo", amount: 1n });
    s.clock.advance(1000);
    await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 2n });
    await slots().call("grantCapacity", { customerId, wallet: "seat", amount: 3n });
    const all = await slots().call("listPools", { customerId });
    expect(all.pools.map((p) => [p.wallet, p.source])).toEqual([
      ["ip", "default"],
      ["seat", "default"],
      ["ip", "promo"],
    ]);
    const ip = await slots().call("listPools", { customerId, wallet: "ip" });
    expect(ip.pools.map((p) => p.source)).toEqual(["default", "promo"]);
    expect(await slots().call("listPools", { customerId: uid("nobody") })).toEqual({ pools: [] });
  });

  it("lists events newest first with filters, a keyset cursor and the total count", async () => {
    const customerId = uid("cust");
    const start = s.clock.now();
    await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 5n, idempotencyKey: uid("g"), description: "plan" });
    s.clock.advance(1000);
    await slots().call("claim", { customerId, wallet: "ip", resourceId: "r1", amount: 2n });
    s.clock.advance(1000);
    await slots().call("claim", { customerId, wallet: "ip", resourceId: "r2" });
    s.clock.advance(1000);
    await slots().call("release", { customerId, wallet: "ip", resourceId: "r1" });
    s.clock.advance(1000);
    await slots().call("revokeCapacity", { customerId, wallet: "ip", amount: 1n });
    await slots().call("grantCapacity", { customerId, wallet: "seat", source: "promo", amount: 1n });

    const all = await slots().call("listSlotEvents", { customerId });
    expect(all.totalCount).toBe(6n);
    expect(all.hasMore).toBe(false);
    expect(all.nextCursor).toBe("");
    expect(all.items.map((e) => [e.type, e.wallet, e.amount, e.resourceId ?? null])).toEqual([
      [SlotEventType.SLOT_EVENT_TYPE_GRANT_CAPACITY, "seat", 1n, null],
      [SlotEventType.SLOT_EVENT_TYPE_REVOKE_CAPACITY, "ip", 1n, null],
      [SlotEventType.SLOT_EVENT_TYPE_RELEASE, "ip", 2n, "r1"],
      [SlotEventType.SLOT_EVENT_TYPE_CLAIM, "ip", 1n, "r2"],
      [SlotEventType.SLOT_EVENT_TYPE_CLAIM, "ip", 2n, "r1"],
      [SlotEventType.SLOT_EVENT_TYPE_GRANT_CAPACITY, "ip", 5n, null],
    ]);
    const grant = all.items.at(-1);
    expect(grant?.description).toBe("plan");
    expect(grant?.idempotencyKey).toMatch(/^g-/);
    expect(all.items[0]?.description).toBeUndefined();

    const page1 = await slots().call("listSlotEvents", { customerId, wallet: "ip", limit: 2 });
    expect(page1).toMatchObject({ totalCount: 5n, hasMore: true });
    expect(page1.items.map((e) => e.type)).toEqual([SlotEventType.SLOT_EVENT_TYPE_REVOKE_CAPACITY, SlotEventType.SLOT_EVENT_TYPE_RELEASE]);
    const page2 = await slots().call("listSlotEvents", { customerId, wallet: "ip", limit: 2, cursor: page1.nextCursor });
    expect(page2.items.map((e) => e.resourceId)).toEqual(["r2", "r1"]);
    const page3 = await slots().call("listSlotEvents", { customerId, wallet: "ip", limit: 2, cursor: page2.nextCursor });
    expect(page3).toMatchObject({ totalCount: 5n, hasMore: false, nextCursor: "" });
    expect(page3.items.map((e) => e.amount)).toEqual([5n]);

    const byResource = await slots().call("listSlotEvents", { customerId, resourceId: "r1" });
    expect(byResource.items.map((e) => e.type)).toEqual([SlotEventType.SLOT_EVENT_TYPE_RELEASE, SlotEventType.SLOT_EVENT_TYPE_CLAIM]);
    const byType = await slots().call("listSlotEvents", {
      customerId,
      types: [SlotEventType.SLOT_EVENT_TYPE_GRANT_CAPACITY, SlotEventType.SLOT_EVENT_TYPE_REVOKE_CAPACITY],
      sources: ["default"],
    });
    expect(byType.totalCount).toBe(2n);
    const window = await slots().call("listSlotEvents", { customerId, fromAt: ts(start + 1000), toAt: ts(start + 3000) });
    expect(window.items.map((e) => e.resourceId)).toEqual(["r2", "r1"]);
    expect(await slots().call("listSlotEvents", { customerId: uid("nobody") })).toEqual({
      items: [],
      totalCount: 0n,
      hasMore: false,
      nextCursor: "",
    });

    await expectError(slots().call("listSlotEvents", { customerId, limit: 0 }), "invalid_limit");
    await expectError(slots().call("listSlotEvents", { customerId, limit: 101 }), "invalid_limit");
    await expectError(slots().call("listSlotEvents", { customerId, fromAt: { seconds: 0n, nanos: -1 } }), "invalid_from_at");
    await expectError(slots().call("listSlotEvents", { customerId, toAt: { seconds: 10n ** 12n, nanos: 0 } }), "invalid_to_at");
    await expectError(
      slots().call("listSlotEvents", { customerId, wallet: "seat", cursor: page1.nextCursor }),
      "invalid_page_token",
      "cursor is not valid for this request.",
    );
    await expectError(
      slots().call("listSlotEvents", { customerId, types: [SlotEventType.SLOT_EVENT_TYPE_UNSPECIFIED] }),
      "invalid_argument",
      "types holds an unknown value.",
    );
  });
});

describe("history and verify", () => {
  it("slot events are append-only", async () => {
    await expect(s.app.database.pool.query("UPDATE slot_events SET amount = amount + 1")).rejects.toThrow(/append-only/);
    await expect(s.app.database.pool.query("DELETE FROM slot_events")).rejects.toThrow(/append-only/);
  });

  it("the CHECK constraints refuse in_use above capacity or below zero", async () => {
    await expect(s.app.database.pool.query("UPDATE slot_pools SET in_use = capacity + 1")).rejects.toThrow();
    await expect(s.app.database.pool.query("UPDATE slot_pools SET in_use = -1")).rejects.toThrow();
  });

  it("verify recomputes every pool from its events and names each difference", async () => {
    await expectPoolsConsistent();
    const customerId = uid("cust");
    const granted = await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 4n });
    await slots().call("claim", { customerId, wallet: "ip", resourceId: "x" });
    const id = granted.pool?.poolId;
    await s.app.database.pool.query("UPDATE slot_pools SET capacity = capacity + 3, in_use = in_use + 1 WHERE id = ?", [id]);
    const { problems } = await verifyLedger(s.app.database.db);
    expect(problems).toEqual([
      `pool ${id}: capacity is 7, its events give 4`,
      `pool ${id}: in_use is 2, its events give 1`,
      `pool ${id}: in_use is 2, its holdings give 1`,
    ]);
    await s.app.database.pool.query("UPDATE slot_pools SET capacity = capacity - 3, in_use = in_use - 1 WHERE id = ?", [id]);
    await expectPoolsConsistent();
  });
});

describe("keys on SlotService and EntitlementService", () => {
  it("refuses a call without a key, lets a read key read and refuses it the writes, and keeps projects apart", async () => {
    const customerId = uid("cust");
    await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 3n });

    const anonymous = slotClientsFor(s.app.port, null);
    const reader = slotClientsFor(s.app.port, (await s.createKey({ scope: "read" })).key);
    const other = slotClientsFor(s.app.port, (await s.createKey({ project: await s.createProject() })).key);
    try {
      await expectError(anonymous.slots.call("listPools", { customerId }), "missing_api_key");
      await expectError(anonymous.entitlements.call("getEntitlement", { customerId, featureKey: "model" }), "missing_api_key");

      expect((await reader.slots.call("listPools", { customerId })).pools.map((p) => p.capacity)).toEqual([3n]);
      await expectError(reader.slots.call("claim", { customerId, wallet: "ip", resourceId: "r1" }), "permission_denied");
      await expectError(reader.entitlements.call("setEntitlement", { customerId, featureKey: "model", value: "x" }), "permission_denied");

      expect((await other.slots.call("listPools", { customerId })).pools).toEqual([]);
      await expectError(other.slots.call("claim", { customerId, wallet: "ip", resourceId: "r1" }), "slot_pool_not_found");
      await expectError(
        other.entitlements.call("setEntitlement", { customerId, featureKey: "model", value: "x" }),
        "entitlement_customer_not_found",
      );
    } finally {
      for (const c of [anonymous, reader, other]) c.close();
    }
  });
});

describe("a customer created by a capacity grant", () => {
  it("takes name, email and metadata from its first deposit that has them, and keeps them after", async () => {
    const customerId = uid("cust");
    await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 1n });
    const created = await s.client.call("getCustomer", { customerId });
    expect([created.name, created.email, created.metadata]).toEqual(["", "", {}]);
    await s.client.call("deposit", { customerId, amount: 5n, name: "Ada", email: "ada@example.com", metadata: { plan: "pro" } });
    const filled = await s.client.call("getCustomer", { customerId });
    expect([filled.name, filled.email, filled.metadata, filled.balance?.available]).toEqual([
      "Ada",
      "ada@example.com",
      { plan: "pro" },
      5n,
    ]);
    await s.client.call("deposit", { customerId, amount: 1n, name: "Bob", email: "bob@example.com", metadata: { plan: "free" } });
    const kept = await s.client.call("getCustomer", { customerId });
    expect([kept.name, kept.email, kept.metadata, kept.balance?.available]).toEqual(["Ada", "ada@example.com", { plan: "pro" }, 6n]);
  });
});

describe("guarded slot writes (like hardening finding 11)", () => {
  const eventCount = async (customerId: string) => (await slots().call("listSlotEvents", { customerId })).totalCount;
  const poolsOf = async (customerId: string) => {
    const [rows] = await s.app.database.pool.query("SELECT id FROM customers WHERE project_id = 1 AND customer_id = ?", [customerId]);
    const customerPk = BigInt((rows as Array<{ id: number | string }>)[0]?.id ?? 0);
    return { customerPk, pools: await readPools(s.app.database.db, 1n, customerPk, "ip") };
  };

  it("a pool update from a stale snapshot, or a release of a released holding, rolls back its batch before COMMIT", async () => {
    const customerId = uid("cust");
    await slots().call("grantCapacity", { customerId, wallet: "ip", amount: 5n });
    const claimed = await slots().call("claim", { customerId, wallet: "ip", resourceId: "r1", amount: 2n });
    await slots().call("release", { customerId, wallet: "ip", resourceId: "r1" });
    const { customerPk, pools } = await poolsOf(customerId);
    const current = pools[0];
    if (!current) throw new Error("no pool");
    const events = await eventCount(customerId);
    const event = insertSlotEventSql({
      projectId: 1n,
      customerPk,
      poolId: current.id,
      holdingId: null,
      type: "GRANT_CAPACITY",
      wallet: "ip",
      source: "default",
      amount: 1n,
      resourceId: null,
      description: null,
      idempotencyKey: null,
      nowMs: s.clock.now(),
      apiKeyId: null,
    });
    // Planned from a snapshot that is not the pool's row (in_use 2, as before the release): the
    // guarded UPDATE matches no row, so the event sent before it must not commit.
    const stale = { ...current, inUse: 2n };
    const staleUpdate = await runTransaction(s.app.database, (tx) =>
      tx.run([event, ...updatePoolSql(stale, { ...stale, capacity: stale.capacity + 1n })], { commit: true }),
    ).catch((error: unknown) => error);
    expect(isRowCountGuardFailure(staleUpdate)).toBe(true);
    // The holding is released already: releasing it again matches no row.
    const twice = await runTransaction(s.app.database, (tx) =>
      tx.run([event, ...releaseHoldingSql(BigInt(claimed.holdingId), s.clock.now())], { commit: true }),
    ).catch((error: unknown) => error);
    expect(isRowCountGuardFailure(twice)).toBe(true);
    expect(rethrowOf(twice)).toMatchObject({ code: "server_error" });

    expect((await slots().call("listPools", { customerId })).pools.map((p) => [p.capacity, p.inUse])).toEqual([[5n, 0n]]);
    expect(await eventCount(customerId)).toBe(events);
    await expectPoolsConsistent();
  });
});

function rethrowOf(error: unknown): unknown {
  try {
    rethrowGuardFailure(error);
  } catch (mapped) {
    return mapped;
  }
}

describe("audit", () => {
  it("every slot event records the key that made it", async () => {
    const created = await s.createKey({ label: "slots-audit" });
    const other = slotClientsFor(s.app.port, created.key);
    try {
      const customerId = uid("cust");
      await other.slots.call("grantCapacity", { customerId, wallet: "ip", amount: 3n });
      await other.slots.call("claim", { customerId, wallet: "ip", resourceId: "r" });
      await other.slots.call("release", { customerId, wallet: "ip", resourceId: "r" });
      await other.slots.call("revokeCapacity", { customerId, wallet: "ip", amount: 1n });
      const [rows] = await s.app.database.pool.query(
        "SELECT e.type, e.api_key_id FROM slot_events e JOIN customers c ON c.id = e.customer_pk WHERE c.customer_id = ? ORDER BY e.id",
        [customerId],
      );
      const id = created.id.toString();
      expect(rows).toEqual([
        { type: "GRANT_CAPACITY", api_key_id: id },
        { type: "CLAIM", api_key_id: id },
        { type: "RELEASE", api_key_id: id },
        { type: "REVOKE_CAPACITY", api_key_id: id },
      ]);
    } finally {
      other.close();
    }
  });
});
