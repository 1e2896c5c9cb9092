import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLedger } from "../../src/operations/verify.js";
import { SECOND, uid } from "../support/fixtures.js";
import { expectHttpError, expectKeyRequired, httpClientFor, HttpTestClient, ok, type EventPageJson } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { slotClientsFor } from "../support/slot-clients.js";

// The slot routes over real HTTP (fetch) against the started server: every route, every code it
// can raise with its exact body, idempotency, the 64-way claim race, and a pool seen over both
// transports.
let s: TestServer;
let http: HttpTestClient;
let grpc: ReturnType<typeof slotClientsFor>;

beforeAll(async () => {
  s = await startTestServer({ DB_POOL_SIZE: "32" });
  http = await httpClientFor(s);
  grpc = slotClientsFor(s.app.port, s.apiKey);
});
afterAll(async () => {
  grpc?.close();
  await s?.stop();
});

const anyId = expect.stringMatching(/^\d+$/);
const pool = (over: Record<string, unknown>) => ({ pool_id: anyId, wallet: "ip", source: "default", status: "ACTIVE", ...over });

const grant = (body: Record<string, unknown>, headers?: Record<string, string>) =>
  http.post("/v1/slot/grant", body, headers ? { headers } : {});
const revoke = (body: Record<string, unknown>) => http.post("/v1/slot/revoke", body);
const claim = (body: Record<string, unknown>) => http.post("/v1/slot/claim", body);
const release = (body: Record<string, unknown>) => http.post("/v1/slot/release", body);
const pools = async (customer: string, query = "") =>
  ok<{ pools: unknown[] }>(await http.get(`/v1/slot/customer/${customer}${query}`)).pools;

const events = async (customer: string, query = "") => ok<EventPageJson>(await http.get(`/v1/slot/events/${customer}${query}`));

/** A customer with a pool of `capacity` in wallet "ip", source "default". */
async function customerWithPool(capacity: number): Promise<string> {
  const customer = uid("cust");
  ok(await grant({ customer_id: customer, wallet: "ip", amount: capacity }));
  return customer;
}

async function expectPoolsConsistent() {
  expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
}

describe("POST /v1/slot/grant and /v1/slot/revoke", () => {
  it("grant creates the customer and the pool and adds to it; another source is another pool", async () => {
    const customer = uid("cust");
    const first = ok(await grant({ customer_id: customer, wallet: "ip", amount: 10 }));
    expect(first).toEqual({ ...pool({ capacity: 10, in_use: 0, available: 10 }), is_idempotent_replay: false });
    const promo = ok(await grant({ customer_id: customer, wallet: "ip", source: "promo", amount: 5, description: "launch promo" }));
    expect(promo).toEqual({ ...pool({ source: "promo", capacity: 5, in_use: 0, available: 5 }), is_idempotent_replay: false });
    const again = ok(await grant({ customer_id: customer, wallet: "ip", amount: 2 }));
    expect(again).toEqual({ ...first, capacity: 12, available: 12 });
    // An empty source is none given, as over gRPC: the default pool.
    const empty = ok(await grant({ customer_id: customer, wallet: "ip", source: "", amount: 1 }));
    expect(empty).toEqual({ ...first, capacity: 13, available: 13 });
    ok(await claim({ customer_id: customer, wallet: "ip", resource_id: "r-empty", source: "" }));
    expect(ok(await http.get(`/v1/customers/${customer}`)).id).toBe(customer);
  });

  it("revoke takes capacity away, never below in_use", async () => {
    const customer = await customerWithPool(10);
    ok(await claim({ customer_id: customer, wallet: "ip", resource_id: "r1", amount: 4 }));
    const revoked = ok(await revoke({ customer_id: customer, wallet: "ip", amount: 6 }));
    expect(revoked).toEqual({ ...pool({ capacity: 4, in_use: 4, available: 0 }), is_idempotent_replay: false });
    expectHttpError(await revoke({ customer_id: customer, wallet: "ip", amount: 1 }), "slot_capacity_below_in_use", {
      details: { requested: 1, capacity: 4, in_use: 4 },
    });
    await expectPoolsConsistent();
  });

  it("revoke of an unknown pool or customer → 404 slot_pool_not_found", async () => {
    const customer = await customerWithPool(3);
    expectHttpError(await revoke({ customer_id: customer, wallet: "seat", amount: 1 }), "slot_pool_not_found", {
      details: { wallet: "seat" },
    });
    expectHttpError(await revoke({ customer_id: customer, wallet: "ip", source: "promo", amount: 1 }), "slot_pool_not_found", {
      details: { wallet: "ip" },
    });
    expectHttpError(await revoke({ customer_id: uid("nobody"), wallet: "ip", amount: 1 }), "slot_pool_not_found", {
      details: { wallet: "ip" },
    });
  });

  it("a repeated grant with its key replays with the capacity unchanged (body key, header, or both)", async () => {
    const customer = uid("cust");
    const key = uid("grant");
    const body = { customer_id: customer, wallet: "seat", amount: 3, idempotency_key: key, description: "plan upgrade" };
    const original = ok(await grant(body));
    expect(original.is_idempotent_replay).toBe(false);
    expect(ok(await grant(body))).toEqual({ ...original, is_idempotent_replay: true });
    const { idempotency_key: _, ...withoutKey } = body;
    expect(ok(await grant(withoutKey, { "Idempotency-Key": key }))).toEqual({ ...original, is_idempotent_replay: true });
    expect(ok(await grant(body, { "Idempotency-Key": key }))).toEqual({ ...original, is_idempotent_replay: true });
    expect(await pools(customer)).toEqual([pool({ wallet: "seat", capacity: 3, in_use: 0, available: 3 })]);
  });

  it("a grant key reused with other parameters → 409 idempotency_conflict; by another customer → transaction_conflict", async () => {
    const customer = uid("cust");
    const key = uid("grant");
    ok(await grant({ customer_id: customer, wallet: "seat", amount: 3, idempotency_key: key }));
    expectHttpError(await grant({ customer_id: customer, wallet: "seat", amount: 4, idempotency_key: key }), "idempotency_conflict");
    expectHttpError(await revoke({ customer_id: customer, wallet: "seat", amount: 3, idempotency_key: key }), "idempotency_conflict");
    expectHttpError(await grant({ customer_id: uid("other"), wallet: "seat", amount: 3, idempotency_key: key }), "transaction_conflict");
    expect(await pools(customer)).toEqual([pool({ wallet: "seat", capacity: 3, in_use: 0, available: 3 })]);
  });

  it("a revoke with its key replays once", async () => {
    const customer = await customerWithPool(10);
    const body = { customer_id: customer, wallet: "ip", amount: 4, idempotency_key: uid("revoke") };
    const original = ok(await revoke(body));
    expect(ok(await revoke(body))).toEqual({ ...original, is_idempotent_replay: true });
    expect(await pools(customer)).toEqual([pool({ capacity: 6, in_use: 0, available: 6 })]);
  });

  it("the header and the body key differ → invalid_argument", async () => {
    expectHttpError(
      await grant({ customer_id: uid("cust"), wallet: "ip", amount: 1, idempotency_key: "a" }, { "Idempotency-Key": "b" }),
      "invalid_argument",
      {
        message: "The Idempotency-Key header and idempotency_key differ.",
        details: { field: "idempotency_key" },
      },
    );
  });

  it("optional fields sent as null are absent", async () => {
    const customer = uid("cust");
    const body = ok(
      await grant({ customer_id: customer, wallet: "ip", amount: 2, source: null, idempotency_key: null, description: null }),
    );
    expect(body).toEqual({ ...pool({ capacity: 2, in_use: 0, available: 2 }), is_idempotent_replay: false });
    const claimed = ok(
      await claim({ customer_id: customer, wallet: "ip", resource_id: "r", source: null, amount: null, description: null }),
    );
    expect(claimed).toMatchObject({ in_use: 1, is_idempotent_replay: false });
  });
});

describe("POST /v1/slot/claim and /v1/slot/release", () => {
  it("claims one unit by default; a second claim of the held resource answers the same holding", async () => {
    const customer = await customerWithPool(10);
    const first = ok(await claim({ customer_id: customer, wallet: "ip", resource_id: "10.0.0.7" }));
    expect(first).toEqual({ ...pool({ capacity: 10, in_use: 1, available: 9 }), holding_id: anyId, is_idempotent_replay: false });
    const again = ok(await claim({ customer_id: customer, wallet: "ip", resource_id: "10.0.0.7", amount: 3 }));
    expect(again).toEqual({ ...first, is_idempotent_replay: true });
    expect(await pools(customer)).toEqual([pool({ capacity: 10, in_use: 1, available: 9 })]);
  });

  it('takes from "default" first, then the oldest; with source, only that pool', async () => {
    const customer = uid("cust");
    const promo = ok(await grant({ customer_id: customer, wallet: "ip", source: "promo", amount: 5 }));
    s.clock.advance(SECOND);
    const main = ok(await grant({ customer_id: customer, wallet: "ip", amount: 1 }));
    expect(ok(await claim({ customer_id: customer, wallet: "ip", resource_id: "a" })).pool_id).toBe(main.pool_id);
    expect(ok(await claim({ customer_id: customer, wallet: "ip", resource_id: "b" })).pool_id).toBe(promo.pool_id);
    const chosen = ok(await claim({ customer_id: customer, wallet: "ip", resource_id: "c", source: "promo", amount: 2 }));
    expect(chosen).toEqual({
      ...pool({ source: "promo", capacity: 5, in_use: 3, available: 2 }),
      holding_id: anyId,
      is_idempotent_replay: false,
    });
  });

  it("no pool → 404 slot_pool_not_found; too little room → slot_insufficient_capacity; room only split → slot_split_required", async () => {
    const customer = await customerWithPool(2);
    ok(await grant({ customer_id: customer, wallet: "ip", source: "promo", amount: 2 }));
    expectHttpError(await claim({ customer_id: customer, wallet: "seat", resource_id: "r" }), "slot_pool_not_found", {
      details: { wallet: "seat" },
    });
    expectHttpError(await claim({ customer_id: uid("nobody"), wallet: "ip", resource_id: "r" }), "slot_pool_not_found", {
      details: { wallet: "ip" },
    });
    expectHttpError(await claim({ customer_id: customer, wallet: "ip", resource_id: "r", source: "other" }), "slot_pool_not_found", {
      details: { wallet: "ip" },
    });
    expectHttpError(await claim({ customer_id: customer, wallet: "ip", resource_id: "r", amount: 5 }), "slot_insufficient_capacity", {
      details: { wallet: "ip", requested: 5, available: 4 },
    });
    expectHttpError(await claim({ customer_id: customer, wallet: "ip", resource_id: "r", amount: 3 }), "slot_split_required", {
      details: { wallet: "ip", requested: 3, available: 4, largest_available: 2 },
    });
    expect(await pools(customer)).toEqual([
      pool({ capacity: 2, in_use: 0, available: 2 }),
      pool({ source: "promo", capacity: 2, in_use: 0, available: 2 }),
    ]);
  });

  it("release gives the units back; released twice is a replay of the same holding; a new claim is a new holding", async () => {
    const customer = await customerWithPool(5);
    const held = ok(await claim({ customer_id: customer, wallet: "ip", resource_id: "job-1", amount: 2 }));
    const released = ok(await release({ customer_id: customer, wallet: "ip", resource_id: "job-1" }));
    expect(released).toEqual({
      ...pool({ capacity: 5, in_use: 0, available: 5 }),
      holding_id: held.holding_id,
      is_idempotent_replay: false,
    });
    expect(ok(await release({ customer_id: customer, wallet: "ip", resource_id: "job-1" }))).toEqual({
      ...released,
      is_idempotent_replay: true,
    });
    const reclaimed = ok(await claim({ customer_id: customer, wallet: "ip", resource_id: "job-1" }));
    expect(reclaimed.holding_id).not.toBe(held.holding_id);
    expect(reclaimed.in_use).toBe(1);
    await expectPoolsConsistent();
  });

  it("never held → 404 slot_holding_not_found", async () => {
    const customer = await customerWithPool(1);
    expectHttpError(await release({ customer_id: customer, wallet: "ip", resource_id: "ghost" }), "slot_holding_not_found", {
      details: { wallet: "ip", resource_id: "ghost" },
    });
    expectHttpError(await release({ customer_id: uid("nobody"), wallet: "ip", resource_id: "ghost" }), "slot_holding_not_found", {
      details: { wallet: "ip", resource_id: "ghost" },
    });
  });

  it("64 concurrent claims over HTTP on a pool of 10: exactly 10 succeed, 54 slot_insufficient_capacity", async () => {
    const customer = await customerWithPool(10);
    const answers = await Promise.all(
      Array.from({ length: 64 }, (_, i) => claim({ customer_id: customer, wallet: "ip", resource_id: `10.0.0.${i}` })),
    );
    const succeeded = answers.filter((a) => a.status === 200).map((a) => a.body as { holding_id: string });
    const refused = answers.filter((a) => a.status !== 200);
    expect(succeeded).toHaveLength(10);
    expect(new Set(succeeded.map((b) => b.holding_id)).size).toBe(10);
    expect(refused).toHaveLength(54);
    for (const r of refused) {
      expectHttpError(r, "slot_insufficient_capacity", { details: { wallet: "ip", requested: 1, available: 0 } });
    }
    expect(await pools(customer)).toEqual([pool({ capacity: 10, in_use: 10, available: 0 })]);
    await expectPoolsConsistent();
  });
});

describe("GET /v1/slot/customer/{customer_id}", () => {
  it("the customer's pools in claim order, optionally of one wallet; an unknown customer has none", async () => {
    const customer = uid("cust");
    ok(await grant({ customer_id: customer, wallet: "ip", source: "promo", amount: 1 }));
    s.clock.advance(SECOND);
    ok(await grant({ customer_id: customer, wallet: "ip", amount: 2 }));
    ok(await grant({ customer_id: customer, wallet: "seat", amount: 3 }));
    expect(await pools(customer)).toEqual([
      pool({ capacity: 2, in_use: 0, available: 2 }),
      pool({ wallet: "seat", capacity: 3, in_use: 0, available: 3 }),
      pool({ source: "promo", capacity: 1, in_use: 0, available: 1 }),
    ]);
    expect(await pools(customer, "?wallet=seat")).toEqual([pool({ wallet: "seat", capacity: 3, in_use: 0, available: 3 })]);
    expect(await pools(uid("nobody"))).toEqual([]);
  });

  it("a pool granted over gRPC is the same pool over HTTP", async () => {
    const customerId = uid("cust");
    const granted = await grpc.slots.call("grantCapacity", { customerId, wallet: "gpu", amount: 4n });
    const claimed = ok(await claim({ customer_id: customerId, wallet: "gpu", resource_id: "job" }));
    expect(claimed.pool_id).toBe(granted.pool?.poolId);
    expect(await pools(customerId)).toEqual([
      { pool_id: granted.pool?.poolId, wallet: "gpu", source: "default", capacity: 4, in_use: 1, available: 3, status: "ACTIVE" },
    ]);
    const overGrpc = await grpc.slots.call("listPools", { customerId });
    expect(overGrpc.pools.map((p) => p.inUse)).toEqual([1n]);
  });

  it("malformed wallet or customer → invalid_argument", async () => {
    expectHttpError(await http.get("/v1/slot/customer/c1?wallet=a%20b"), "invalid_argument", {
      message: "wallet must be 1-64 characters of [A-Za-z0-9_.:@-].",
      details: { field: "wallet" },
    });
    expectHttpError(await http.get("/v1/slot/customer/a%20b"), "invalid_argument", {
      message: "customer_id must be 1-128 characters of [A-Za-z0-9_.:@-].",
      details: { field: "customer_id" },
    });
  });
});

describe("GET /v1/slot/events/{customer_id}", () => {
  /** grant 3 (key k), claim r1, claim r2 (promo), release r1: four events, one second apart. */
  async function history(): Promise<{ customer: string; key: string; startMs: number }> {
    const customer = uid("cust");
    const key = uid("grant");
    const startMs = s.clock.now();
    ok(await grant({ customer_id: customer, wallet: "ip", amount: 3, idempotency_key: key, description: "plan" }));
    s.clock.advance(SECOND);
    ok(await grant({ customer_id: customer, wallet: "seat", source: "promo", amount: 1 }));
    s.clock.advance(SECOND);
    ok(await claim({ customer_id: customer, wallet: "ip", resource_id: "r1", description: "vm" }));
    s.clock.advance(SECOND);
    ok(await claim({ customer_id: customer, wallet: "seat", resource_id: "r2" }));
    s.clock.advance(SECOND);
    ok(await release({ customer_id: customer, wallet: "ip", resource_id: "r1" }));
    s.clock.advance(SECOND);
    return { customer, key, startMs };
  }

  it("newest first with Velobase's fields and nulls", async () => {
    const { customer, key, startMs } = await history();
    const page = await events(customer);
    expect(page.total_count).toBe(5);
    expect(page.has_more).toBe(false);
    expect(page.next_cursor).toBeNull();
    expect(page.items.map((e) => e.type)).toEqual(["RELEASE", "CLAIM", "CLAIM", "GRANT_CAPACITY", "GRANT_CAPACITY"]);
    expect(page.items[4]).toEqual({
      id: anyId,
      type: "GRANT_CAPACITY",
      wallet: "ip",
      source: "default",
      amount: 3,
      resource_id: null,
      description: "plan",
      idempotency_key: key,
      pool_id: anyId,
      holding_id: null,
      created_at: new Date(startMs).toISOString(),
    });
    expect(page.items[2]).toEqual({
      id: anyId,
      type: "CLAIM",
      wallet: "ip",
      source: "default",
      amount: 1,
      resource_id: "r1",
      description: "vm",
      idempotency_key: null,
      pool_id: page.items[4]?.pool_id,
      holding_id: anyId,
      created_at: new Date(startMs + 2 * SECOND).toISOString(),
    });
    expect(page.items[0]).toMatchObject({ type: "RELEASE", resource_id: "r1", holding_id: page.items[2]?.holding_id });
  });

  it("filters by wallet, resource_id, types, sources and a time window", async () => {
    const { customer, startMs } = await history();
    const types = async (query: string) => (await events(customer, query)).items.map((e) => `${e.type}:${String(e.resource_id)}`);
    expect(await types("?wallet=seat")).toEqual(["CLAIM:r2", "GRANT_CAPACITY:null"]);
    expect(await types("?resource_id=r1")).toEqual(["RELEASE:r1", "CLAIM:r1"]);
    expect(await types("?types=CLAIM,RELEASE,CLAIM")).toEqual(["RELEASE:r1", "CLAIM:r2", "CLAIM:r1"]);
    expect(await types("?sources=promo")).toEqual(["CLAIM:r2", "GRANT_CAPACITY:null"]);
    expect(await types("?sources=default,promo&types=GRANT_CAPACITY")).toEqual(["GRANT_CAPACITY:null", "GRANT_CAPACITY:null"]);
    const from = encodeURIComponent(new Date(startMs + SECOND).toISOString());
    const to = encodeURIComponent(new Date(startMs + 3 * SECOND).toISOString());
    expect(await types(`?from_at=${from}&to_at=${to}`)).toEqual(["CLAIM:r1", "GRANT_CAPACITY:null"]);
    const windowed = await events(customer, `?from_at=${from}&to_at=${to}`);
    expect(windowed.total_count).toBe(2);
  });

  it("pages with limit and cursor; an unknown customer has no events", async () => {
    const { customer } = await history();
    const seen: string[] = [];
    let query = "?limit=2";
    for (const expected of [
      { n: 2, more: true },
      { n: 2, more: true },
      { n: 1, more: false },
    ]) {
      const page = await events(customer, query);
      expect({ n: page.items.length, more: page.has_more, total: page.total_count }).toEqual({ ...expected, total: 5 });
      seen.push(...page.items.map((e) => String(e.id)));
      if (page.next_cursor !== null) query = `?limit=2&cursor=${page.next_cursor}`;
      else expect(expected.more).toBe(false);
    }
    expect(new Set(seen).size).toBe(5);
    expect(seen).toEqual([...seen].sort((a, b) => Number(BigInt(b) - BigInt(a))));
    expect(await events(uid("nobody"))).toEqual({ items: [], total_count: 0, has_more: false, next_cursor: null });
  });

  it("bad limit → invalid_limit; bad from_at / to_at → invalid_from_at / invalid_to_at; bad cursor → invalid_page_token", async () => {
    const { customer } = await history();
    const path = `/v1/slot/events/${customer}`;
    for (const limit of ["0", "101", "1.5", "x"]) {
      expectHttpError(await http.get(`${path}?limit=${limit}`), "invalid_limit", { details: { field: "limit" } });
    }
    expectHttpError(await http.get(`${path}?from_at=yesterday`), "invalid_from_at", { details: { field: "from_at" } });
    expectHttpError(await http.get(`${path}?to_at=2026-13-01`), "invalid_to_at", { details: { field: "to_at" } });
    expectHttpError(await http.get(`${path}?cursor=garbage`), "invalid_page_token", {
      message: "cursor is not valid for this request.",
      details: { field: "cursor" },
    });
    const cursor = (await events(customer, "?limit=1")).next_cursor;
    expectHttpError(await http.get(`${path}?limit=1&types=CLAIM&cursor=${cursor}`), "invalid_page_token", {
      message: "cursor is not valid for this request.",
      details: { field: "cursor" },
    });
  });

  it("an unknown type, a malformed source or resource_id → invalid_argument naming the field", async () => {
    const path = `/v1/slot/events/${uid("cust")}`;
    expectHttpError(await http.get(`${path}?types=CLAIM,GRANT`), "invalid_argument", {
      message: "types holds an unknown value.",
      details: { field: "types", value: "GRANT" },
    });
    expectHttpError(await http.get(`${path}?sources=a%20b`), "invalid_argument", {
      message: "source must be 1-64 characters of [A-Za-z0-9_.:@-].",
      details: { field: "source" },
    });
    expectHttpError(await http.get(`${path}?resource_id=a%20b`), "invalid_argument", {
      message: "resource_id must be 1-128 characters of [A-Za-z0-9_.:@-].",
      details: { field: "resource_id" },
    });
    const tooMany = Array.from({ length: 33 }, (_, i) => `s${i}`).join(",");
    expectHttpError(await http.get(`${path}?sources=${tooMany}`), "invalid_argument", {
      message: "sources holds at most 32 values.",
      details: { field: "sources" },
    });
  });
});

describe("request validation", () => {
  const ID = (field: string) => `${field} must be 1-128 characters of [A-Za-z0-9_.:@-].`;
  const cases: Array<{
    name: string;
    path: string;
    body: Record<string, unknown>;
    code: Parameters<typeof expectHttpError>[1];
    message?: string;
    field: string;
  }> = [
    {
      name: "grant without customer_id",
      path: "/v1/slot/grant",
      body: { wallet: "ip", amount: 1 },
      code: "customer_id_required",
      message: "customer_id is required.",
      field: "customer_id",
    },
    {
      name: "grant with empty customer_id",
      path: "/v1/slot/grant",
      body: { customer_id: "", wallet: "ip", amount: 1 },
      code: "customer_id_required",
      message: "customer_id is required.",
      field: "customer_id",
    },
    {
      name: "grant without wallet",
      path: "/v1/slot/grant",
      body: { customer_id: "c", amount: 1 },
      code: "wallet_required",
      message: "wallet is required.",
      field: "wallet",
    },
    {
      name: "grant with empty wallet",
      path: "/v1/slot/grant",
      body: { customer_id: "c", wallet: "", amount: 1 },
      code: "wallet_required",
      message: "wallet is required.",
      field: "wallet",
    },
    {
      name: "grant with malformed wallet",
      path: "/v1/slot/grant",
      body: { customer_id: "c", wallet: "a b", amount: 1 },
      code: "invalid_argument",
      message: "wallet must be 1-64 characters of [A-Za-z0-9_.:@-].",
      field: "wallet",
    },
    {
      name: "grant without amount",
      path: "/v1/slot/grant",
      body: { customer_id: "c", wallet: "ip" },
      code: "amount_must_be_positive",
      message: "amount is required.",
      field: "amount",
    },
    {
      name: "grant amount 0",
      path: "/v1/slot/grant",
      body: { customer_id: "c", wallet: "ip", amount: 0 },
      code: "amount_must_be_positive",
      field: "amount",
    },
    {
      name: "revoke amount 1.5",
      path: "/v1/slot/revoke",
      body: { customer_id: "c", wallet: "ip", amount: 1.5 },
      code: "amount_must_be_positive",
      field: "amount",
    },
    {
      name: "grant amount above 10^15",
      path: "/v1/slot/grant",
      body: { customer_id: "c", wallet: "ip", amount: 1e15 + 1 },
      code: "invalid_argument",
      message: "amount must be at most 1000000000000000.",
      field: "amount",
    },
    {
      name: "grant malformed source",
      path: "/v1/slot/grant",
      body: { customer_id: "c", wallet: "ip", amount: 1, source: "a b" },
      code: "invalid_argument",
      message: "source must be 1-64 characters of [A-Za-z0-9_.:@-].",
      field: "source",
    },
    {
      name: "grant malformed idempotency_key",
      path: "/v1/slot/grant",
      body: { customer_id: "c", wallet: "ip", amount: 1, idempotency_key: "a b" },
      code: "invalid_argument",
      message: ID("idempotency_key"),
      field: "idempotency_key",
    },
    {
      name: "claim without resource_id",
      path: "/v1/slot/claim",
      body: { customer_id: "c", wallet: "ip" },
      code: "resource_id_required",
      message: "resource_id is required.",
      field: "resource_id",
    },
    {
      name: "claim with empty resource_id",
      path: "/v1/slot/claim",
      body: { customer_id: "c", wallet: "ip", resource_id: "" },
      code: "resource_id_required",
      message: "resource_id is required.",
      field: "resource_id",
    },
    {
      name: "claim amount 0",
      path: "/v1/slot/claim",
      body: { customer_id: "c", wallet: "ip", resource_id: "r", amount: 0 },
      code: "amount_must_be_positive",
      field: "amount",
    },
    {
      name: "release with malformed resource_id",
      path: "/v1/slot/release",
      body: { customer_id: "c", wallet: "ip", resource_id: "a b" },
      code: "invalid_argument",
      message: ID("resource_id"),
      field: "resource_id",
    },
    {
      name: "release with numeric wallet",
      path: "/v1/slot/release",
      body: { customer_id: "c", wallet: 7, resource_id: "r" },
      code: "invalid_argument",
      message: "wallet must be string.",
      field: "wallet",
    },
  ];
  it.each(cases)("$name → $code", async (c) => {
    expectHttpError(await http.post(c.path, c.body), c.code, {
      ...(c.message === undefined ? {} : { message: c.message }),
      details: { field: c.field },
    });
  });
});

describe("keys", () => {
  const writes: Array<[string, Record<string, unknown>]> = [
    ["/v1/slot/grant", { customer_id: "c", wallet: "ip", amount: 1 }],
    ["/v1/slot/revoke", { customer_id: "c", wallet: "ip", amount: 1 }],
    ["/v1/slot/claim", { customer_id: "c", wallet: "ip", resource_id: "r" }],
    ["/v1/slot/release", { customer_id: "c", wallet: "ip", resource_id: "r" }],
  ];
  const reads = ["/v1/slot/customer/c", "/v1/slot/events/c"];

  it("without a usable key: 401 missing_api_key or invalid_api_key", () => expectKeyRequired(http, writes, reads));

  it("a read key reads pools and events; every write is 403 permission_denied", async () => {
    const customer = await customerWithPool(2);
    const reader = new HttpTestClient(s.httpUrl, (await s.createKey({ scope: "read" })).key);
    expect(ok<{ pools: unknown[] }>(await reader.get(`/v1/slot/customer/${customer}`)).pools).toHaveLength(1);
    expect(ok<EventPageJson>(await reader.get(`/v1/slot/events/${customer}`)).total_count).toBe(1);
    for (const [path, body] of writes) {
      expectHttpError(await reader.post(path, { ...body, customer_id: customer }), "permission_denied", {
        details: { required_scope: "write" },
      });
    }
    expect(await pools(customer)).toEqual([pool({ capacity: 2, in_use: 0, available: 2 })]);
  });

  it("another project's key sees none of this project's pools", async () => {
    const customer = await customerWithPool(2);
    const other = new HttpTestClient(s.httpUrl, (await s.createKey({ project: await s.createProject() })).key);
    expect(ok(await other.get(`/v1/slot/customer/${customer}`))).toEqual({ pools: [] });
    expectHttpError(await other.post("/v1/slot/claim", { customer_id: customer, wallet: "ip", resource_id: "r" }), "slot_pool_not_found", {
      details: { wallet: "ip" },
    });
  });
});
