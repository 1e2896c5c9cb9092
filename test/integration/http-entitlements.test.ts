import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ErrorCode } from "../../src/errors/catalog.js";
import { DAY, SECOND, ts, uid } from "../support/fixtures.js";
import { expectHttpError, expectKeyRequired, httpClientFor, HttpTestClient, ok, type EventPageJson } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { slotClientsFor } from "../support/slot-clients.js";

// The entitlement routes over real HTTP (fetch) against the started server: every route, every
// code it can raise with its exact body, nulls sent as JSON null, expired entitlements hidden and
// shown, and an entitlement set over HTTP read over gRPC.
let s: TestServer;
let http: HttpTestClient;
let grpc: ReturnType<typeof slotClientsFor>;

beforeAll(async () => {
  s = await startTestServer();
  http = await httpClientFor(s);
  grpc = slotClientsFor(s.app.port, s.apiKey);
});
afterAll(async () => {
  grpc?.close();
  await s?.stop();
});

const anyId = expect.stringMatching(/^\d+$/);
const iso = (ms: number) => new Date(ms).toISOString();

const set = (body: Record<string, unknown>) => http.post("/v1/entitlement/set", body);
const remove = (body: Record<string, unknown>) => http.post("/v1/entitlement/remove", body);
const getOne = async (customer: string, feature: string) =>
  ok<{ entitlement: Record<string, unknown> | null }>(await http.get(`/v1/entitlement/${customer}/${feature}`)).entitlement;
const list = async (customer: string, query = "") =>
  ok<{ items: Array<Record<string, unknown>> }>(await http.get(`/v1/entitlement/${customer}${query}`)).items;

const events = async (customer: string, query = "") => ok<EventPageJson>(await http.get(`/v1/entitlement/${customer}/events${query}`));

/** A customer billing knows (entitlements never create one). */
async function customer(): Promise<string> {
  const id = uid("cust");
  ok(await http.post("/v1/customers/deposit", { customer_id: id, amount: 1 }));
  return id;
}

/** The view of a value set with only the required fields. */
const bare = (featureKey: string, value: string) => ({
  entitlement_id: anyId,
  feature_key: featureKey,
  value,
  valid_from: null,
  valid_until: null,
  source: null,
  description: null,
  metadata: null,
  is_active: true,
});

describe("POST /v1/entitlement/set and GET /v1/entitlement/{customer_id}/{feature_key}", () => {
  it("creates with every field, then replaces answering the old value; get answers the current one", async () => {
    const id = await customer();
    const now = s.clock.now();
    const metadata = { plan: "pro", seats: 3, nested: { on: true } };
    const created = ok(
      await set({
        customer_id: id,
        feature_key: "model",
        value: "gpt-4",
        valid_from: iso(now - DAY),
        valid_until: iso(now + DAY),
        source: "plan",
        description: "pro plan",
        metadata,
      }),
    );
    expect(created).toEqual({
      entitlement_id: anyId,
      feature_key: "model",
      value: "gpt-4",
      valid_from: iso(now - DAY),
      valid_until: iso(now + DAY),
      source: "plan",
      description: "pro plan",
      metadata,
      is_active: true,
      is_created: true,
      old_value: null,
    });
    const replaced = ok(await set({ customer_id: id, feature_key: "model", value: "gpt-5" }));
    expect(replaced).toEqual({ ...bare("model", "gpt-5"), entitlement_id: created.entitlement_id, is_created: false, old_value: "gpt-4" });
    expect(await getOne(id, "model")).toEqual({ ...bare("model", "gpt-5"), entitlement_id: created.entitlement_id });
  });

  it('metadata shaped like the stored outcomes\' bigint tag ({"$bigint": …}) reads back as sent, over HTTP and gRPC', async () => {
    const id = await customer();
    const metadata = { $bigint: "42" };
    const nested = { note: { $bigint: "card-x" } };
    ok(await set({ customer_id: id, feature_key: "tagged", value: "on", metadata }));
    ok(await set({ customer_id: id, feature_key: "nested", value: "on", metadata: nested }));
    expect((await getOne(id, "tagged"))?.metadata).toEqual(metadata);
    expect((await getOne(id, "nested"))?.metadata).toEqual(nested);
    expect((await list(id)).map((e) => [e.feature_key, e.metadata])).toEqual([
      ["nested", nested],
      ["tagged", metadata],
    ]);
    // Replacing reads the old row in the write's prefetch.
    expect(ok<{ metadata: unknown }>(await set({ customer_id: id, feature_key: "nested", value: "off" })).metadata).toBeNull();
    const overGrpc = await grpc.entitlements.call("getEntitlement", { customerId: id, featureKey: "tagged" });
    expect(overGrpc.entitlement?.metadata).toEqual({ $bigint: "42" });
  });

  it("optional fields sent as null are absent, and nulls come back as JSON null", async () => {
    const id = await customer();
    const body = ok(
      await set({
        customer_id: id,
        feature_key: "tier",
        value: "gold",
        valid_from: null,
        valid_until: null,
        source: null,
        description: null,
        metadata: null,
      }),
    );
    expect(body).toEqual({ ...bare("tier", "gold"), is_created: true, old_value: null });
    expect(await getOne(id, "tier")).toEqual(bare("tier", "gold"));
    // An empty source is none, as over gRPC.
    ok(await set({ customer_id: id, feature_key: "tier2", value: "gold", source: "" }));
    expect(await getOne(id, "tier2")).toEqual(bare("tier2", "gold"));
  });

  it('never set, or on an unknown customer → 200 {"entitlement": null}', async () => {
    const id = await customer();
    const response = await http.get(`/v1/entitlement/${id}/model`);
    expect({ status: response.status, body: response.body }).toEqual({ status: 200, body: { entitlement: null } });
    expect(await getOne(uid("nobody"), "model")).toBeNull();
  });

  it("a past valid_until is accepted; the entitlement is hidden from get and list, shown with include_expired", async () => {
    const id = await customer();
    const now = s.clock.now();
    ok(await set({ customer_id: id, feature_key: "beta", value: "on", valid_until: iso(now - SECOND) }));
    ok(await set({ customer_id: id, feature_key: "model", value: "gpt-4", valid_until: iso(now + DAY) }));
    expect(await getOne(id, "beta")).toBeNull();
    expect((await list(id)).map((e) => e.feature_key)).toEqual(["model"]);
    expect(await list(id, "?include_expired=true")).toEqual([
      { ...bare("beta", "on"), valid_until: iso(now - SECOND), is_active: false },
      { ...bare("model", "gpt-4"), valid_until: iso(now + DAY), is_active: true },
    ]);
    s.clock.advance(DAY);
    expect(await getOne(id, "model")).toBeNull();
    expect(await list(id)).toEqual([]);
    expect((await list(id, "?include_expired=true")).map((e) => [e.feature_key, e.is_active])).toEqual([
      ["beta", false],
      ["model", false],
    ]);
  });

  it("one not yet started is answered with is_active false", async () => {
    const id = await customer();
    const start = s.clock.now() + DAY;
    ok(await set({ customer_id: id, feature_key: "next", value: "v2", valid_from: iso(start) }));
    expect(await getOne(id, "next")).toEqual({ ...bare("next", "v2"), valid_from: iso(start), is_active: false });
    expect(await list(id)).toEqual([{ ...bare("next", "v2"), valid_from: iso(start), is_active: false }]);
  });

  it("an entitlement set over HTTP is read over gRPC", async () => {
    const id = await customer();
    const until = s.clock.now() + DAY;
    const created = ok(
      await set({
        customer_id: id,
        feature_key: "model",
        value: "gpt-4",
        valid_until: iso(until),
        source: "plan",
        metadata: { plan: "pro" },
      }),
    );
    const got = await grpc.entitlements.call("getEntitlement", { customerId: id, featureKey: "model" });
    expect(got.entitlement).toMatchObject({
      entitlementId: created.entitlement_id,
      featureKey: "model",
      value: "gpt-4",
      validUntil: ts(until),
      source: "plan",
      metadata: { plan: "pro" },
      isActive: true,
    });
    await grpc.entitlements.call("setEntitlement", { customerId: id, featureKey: "model", value: "gpt-5" });
    expect(await getOne(id, "model")).toMatchObject({
      entitlement_id: created.entitlement_id,
      value: "gpt-5",
      source: null,
      valid_until: null,
    });
  });
});

describe("GET /v1/entitlement/{customer_id}", () => {
  it("every entitlement by feature_key, or only the ones named; an unknown customer has none", async () => {
    const id = await customer();
    for (const [feature_key, value] of [
      ["seats", "5"],
      ["model", "gpt-4"],
      ["region", "eu"],
    ])
      ok(await set({ customer_id: id, feature_key, value }));
    expect(await list(id)).toEqual([bare("model", "gpt-4"), bare("region", "eu"), bare("seats", "5")]);
    expect((await list(id, "?feature_keys=seats,model,seats,unknown")).map((e) => e.feature_key)).toEqual(["model", "seats"]);
    expect(await list(uid("nobody"))).toEqual([]);
  });

  it("malformed feature_keys or include_expired → invalid_argument naming the field", async () => {
    const id = await customer();
    expectHttpError(await http.get(`/v1/entitlement/${id}?feature_keys=a,b%20c`), "invalid_argument", {
      message: "feature_keys must be 1-128 characters of [A-Za-z0-9_.:@-].",
      details: { field: "feature_keys" },
    });
    const tooMany = Array.from({ length: 101 }, (_, i) => `k${i}`).join(",");
    expectHttpError(await http.get(`/v1/entitlement/${id}?feature_keys=${tooMany}`), "invalid_argument", {
      message: "feature_keys holds at most 100 keys.",
      details: { field: "feature_keys" },
    });
    expectHttpError(await http.get(`/v1/entitlement/${id}?include_expired=yes`), "invalid_argument", {
      message: "include_expired must be boolean.",
      details: { field: "include_expired" },
    });
  });
});

describe("POST /v1/entitlement/remove", () => {
  it("answers the removed value; nothing to remove is {removed: false, old_value: null}", async () => {
    const id = await customer();
    ok(await set({ customer_id: id, feature_key: "model", value: "gpt-4" }));
    expect(ok(await remove({ customer_id: id, feature_key: "model" }))).toEqual({ removed: true, old_value: "gpt-4" });
    expect(await getOne(id, "model")).toBeNull();
    expect(ok(await remove({ customer_id: id, feature_key: "model" }))).toEqual({ removed: false, old_value: null });
    expect(ok(await remove({ customer_id: uid("nobody"), feature_key: "model" }))).toEqual({ removed: false, old_value: null });
    const again = ok(await set({ customer_id: id, feature_key: "model", value: "gpt-5" }));
    expect(again).toMatchObject({ is_created: true, old_value: null });
  });
});

describe("GET /v1/entitlement/{customer_id}/events", () => {
  /** model set, model replaced, beta set, model removed: one second apart. */
  async function history(): Promise<{ id: string; startMs: number }> {
    const id = await customer();
    const startMs = s.clock.now();
    ok(await set({ customer_id: id, feature_key: "model", value: "gpt-4", source: "plan", description: "pro" }));
    s.clock.advance(SECOND);
    ok(await set({ customer_id: id, feature_key: "model", value: "gpt-5" }));
    s.clock.advance(SECOND);
    ok(await set({ customer_id: id, feature_key: "beta", value: "on" }));
    s.clock.advance(SECOND);
    ok(await remove({ customer_id: id, feature_key: "model" }));
    s.clock.advance(SECOND);
    return { id, startMs };
  }

  it("SET and REMOVE, newest first, with nulls as JSON null", async () => {
    const { id, startMs } = await history();
    const page = await events(id);
    expect(page).toEqual({
      items: [
        {
          id: anyId,
          feature_key: "model",
          type: "REMOVE",
          old_value: "gpt-5",
          new_value: null,
          source: null,
          description: null,
          created_at: iso(startMs + 3 * SECOND),
        },
        {
          id: anyId,
          feature_key: "beta",
          type: "SET",
          old_value: null,
          new_value: "on",
          source: null,
          description: null,
          created_at: iso(startMs + 2 * SECOND),
        },
        {
          id: anyId,
          feature_key: "model",
          type: "SET",
          old_value: "gpt-4",
          new_value: "gpt-5",
          source: null,
          description: null,
          created_at: iso(startMs + SECOND),
        },
        {
          id: anyId,
          feature_key: "model",
          type: "SET",
          old_value: null,
          new_value: "gpt-4",
          source: "plan",
          description: "pro",
          created_at: iso(startMs),
        },
      ],
      total_count: 4,
      has_more: false,
      next_cursor: null,
    });
  });

  it("filters by feature_key, types and a time window; pages with limit and cursor", async () => {
    const { id, startMs } = await history();
    const summary = async (query: string) => (await events(id, query)).items.map((e) => `${e.type}:${e.feature_key}`);
    expect(await summary("?feature_key=beta")).toEqual(["SET:beta"]);
    expect(await summary("?types=REMOVE")).toEqual(["REMOVE:model"]);
    expect(await summary("?feature_key=model&types=SET,SET")).toEqual(["SET:model", "SET:model"]);
    const from = encodeURIComponent(iso(startMs + SECOND));
    const to = encodeURIComponent(iso(startMs + 3 * SECOND));
    expect(await summary(`?from_at=${from}&to_at=${to}`)).toEqual(["SET:beta", "SET:model"]);
    const first = await events(id, "?limit=3");
    expect({ n: first.items.length, more: first.has_more, total: first.total_count }).toEqual({ n: 3, more: true, total: 4 });
    const second = await events(id, `?limit=3&cursor=${first.next_cursor}`);
    expect({ n: second.items.length, more: second.has_more, cursor: second.next_cursor }).toEqual({ n: 1, more: false, cursor: null });
    expect(second.items[0]).toMatchObject({ type: "SET", new_value: "gpt-4" });
    expect(await events(uid("nobody"))).toEqual({ items: [], total_count: 0, has_more: false, next_cursor: null });
  });

  it('a feature key named "events" is set and listed, but its path is the events route', async () => {
    const id = await customer();
    ok(await set({ customer_id: id, feature_key: "events", value: "on" }));
    expect(await events(id)).toMatchObject({ total_count: 1, items: [{ type: "SET", feature_key: "events", new_value: "on" }] });
    expect(await list(id, "?feature_keys=events")).toEqual([bare("events", "on")]);
  });

  it("bad limit, from_at, to_at, cursor or type → its code", async () => {
    const { id } = await history();
    const path = `/v1/entitlement/${id}/events`;
    for (const limit of ["0", "101", "2.5"]) {
      expectHttpError(await http.get(`${path}?limit=${limit}`), "invalid_limit", { details: { field: "limit" } });
    }
    expectHttpError(await http.get(`${path}?from_at=soon`), "invalid_from_at", { details: { field: "from_at" } });
    expectHttpError(await http.get(`${path}?to_at=2026-02-30`), "invalid_to_at", { details: { field: "to_at" } });
    const cursorError = { message: "cursor is not valid for this request.", details: { field: "cursor" } };
    expectHttpError(await http.get(`${path}?cursor=not-a-cursor`), "invalid_page_token", cursorError);
    const cursor = (await events(id, "?limit=1")).next_cursor;
    expectHttpError(await http.get(`${path}?limit=1&feature_key=beta&cursor=${cursor}`), "invalid_page_token", cursorError);
    expectHttpError(await http.get(`${path}?types=SET,DELETE`), "invalid_argument", {
      message: "types holds an unknown value.",
      details: { field: "types", value: "DELETE" },
    });
    expectHttpError(await http.get(`${path}?feature_key=a%20b`), "invalid_argument", {
      message: "feature_key must be 1-128 characters of [A-Za-z0-9_.:@-].",
      details: { field: "feature_key" },
    });
  });
});

describe("request validation", () => {
  interface Case {
    readonly name: string;
    readonly path: string;
    readonly body: (customerId: string) => Record<string, unknown>;
    readonly code: ErrorCode;
    readonly message?: string;
    readonly details?: Record<string, unknown>;
  }
  const base = (customer_id: string) => ({ customer_id, feature_key: "model", value: "gpt-4" });
  const at = "2026-06-01T00:00:00.000Z";
  const cases: Case[] = [
    {
      name: "unknown customer",
      path: "/v1/entitlement/set",
      body: () => base("nobody-here"),
      code: "entitlement_customer_not_found",
      details: { customer_id: "nobody-here" },
    },
    {
      name: "no customer_id",
      path: "/v1/entitlement/set",
      body: () => ({ feature_key: "model", value: "v" }),
      code: "customer_id_required",
      message: "customer_id is required.",
      details: { field: "customer_id" },
    },
    {
      name: "no feature_key",
      path: "/v1/entitlement/set",
      body: (c) => ({ customer_id: c, value: "v" }),
      code: "feature_key_required",
      message: "feature_key is required.",
      details: { field: "feature_key" },
    },
    {
      name: "empty feature_key",
      path: "/v1/entitlement/set",
      body: (c) => ({ ...base(c), feature_key: "" }),
      code: "feature_key_required",
      message: "feature_key is required.",
      details: { field: "feature_key" },
    },
    {
      name: "malformed feature_key",
      path: "/v1/entitlement/set",
      body: (c) => ({ ...base(c), feature_key: "a b" }),
      code: "invalid_argument",
      message: "feature_key must be 1-128 characters of [A-Za-z0-9_.:@-].",
      details: { field: "feature_key" },
    },
    {
      name: "no value",
      path: "/v1/entitlement/set",
      body: (c) => ({ customer_id: c, feature_key: "model" }),
      code: "value_required",
      message: "value is required.",
      details: { field: "value" },
    },
    {
      name: "empty value",
      path: "/v1/entitlement/set",
      body: (c) => ({ ...base(c), value: "" }),
      code: "value_required",
      details: { field: "value" },
    },
    {
      name: "numeric value",
      path: "/v1/entitlement/set",
      body: (c) => ({ ...base(c), value: 4 }),
      code: "invalid_argument",
      message: "value must be string.",
      details: { field: "value" },
    },
    {
      name: "value too long",
      path: "/v1/entitlement/set",
      body: (c) => ({ ...base(c), value: "x".repeat(4097) }),
      code: "invalid_argument",
      message: "value must be at most 4096 characters.",
      details: { field: "value" },
    },
    {
      name: "bad valid_from",
      path: "/v1/entitlement/set",
      body: (c) => ({ ...base(c), valid_from: "tomorrow" }),
      code: "invalid_valid_from",
      details: { field: "valid_from" },
    },
    {
      name: "numeric valid_from",
      path: "/v1/entitlement/set",
      body: (c) => ({ ...base(c), valid_from: 5 }),
      code: "invalid_valid_from",
      details: { field: "valid_from" },
    },
    {
      name: "bad valid_until",
      path: "/v1/entitlement/set",
      body: (c) => ({ ...base(c), valid_until: "2026-02-30" }),
      code: "invalid_valid_until",
      details: { field: "valid_until" },
    },
    {
      name: "valid_until = valid_from",
      path: "/v1/entitlement/set",
      body: (c) => ({ ...base(c), valid_from: at, valid_until: at }),
      code: "entitlement_validation_error",
      details: { field: "valid_until" },
    },
    {
      name: "malformed source",
      path: "/v1/entitlement/set",
      body: (c) => ({ ...base(c), source: "a b" }),
      code: "invalid_argument",
      message: "source must be 1-64 characters of [A-Za-z0-9_.:@-].",
      details: { field: "source" },
    },
    {
      name: "metadata not an object",
      path: "/v1/entitlement/set",
      body: (c) => ({ ...base(c), metadata: "x" }),
      code: "invalid_argument",
      message: "metadata must be object.",
      details: { field: "metadata" },
    },
    {
      name: "remove without feature_key",
      path: "/v1/entitlement/remove",
      body: (c) => ({ customer_id: c }),
      code: "feature_key_required",
      message: "feature_key is required.",
      details: { field: "feature_key" },
    },
    {
      name: "remove without customer_id",
      path: "/v1/entitlement/remove",
      body: () => ({ feature_key: "model" }),
      code: "customer_id_required",
      message: "customer_id is required.",
      details: { field: "customer_id" },
    },
  ];
  it.each(cases)("$name → $code", async (c) => {
    const id = await customer();
    expectHttpError(await http.post(c.path, c.body(id)), c.code, {
      ...(c.message === undefined ? {} : { message: c.message }),
      details: c.details ?? {},
    });
    expect(await list(id, "?include_expired=true")).toEqual([]);
  });

  it("a malformed feature key in the path → invalid_argument", async () => {
    expectHttpError(await http.get("/v1/entitlement/c1/a%20b"), "invalid_argument", {
      message: "feature_key must be 1-128 characters of [A-Za-z0-9_.:@-].",
      details: { field: "feature_key" },
    });
  });
});

describe("keys", () => {
  const writes: Array<[string, Record<string, unknown>]> = [
    ["/v1/entitlement/set", { customer_id: "c", feature_key: "model", value: "v" }],
    ["/v1/entitlement/remove", { customer_id: "c", feature_key: "model" }],
  ];
  const reads = ["/v1/entitlement/c", "/v1/entitlement/c/model", "/v1/entitlement/c/events"];

  it("without a usable key: 401 missing_api_key or invalid_api_key", () => expectKeyRequired(http, writes, reads));

  it("a read key reads every route; set and remove are 403 permission_denied", async () => {
    const id = await customer();
    ok(await set({ customer_id: id, feature_key: "model", value: "gpt-4" }));
    const reader = new HttpTestClient(s.httpUrl, (await s.createKey({ scope: "read" })).key);
    expect(ok<{ entitlement: unknown }>(await reader.get(`/v1/entitlement/${id}/model`)).entitlement).toEqual(bare("model", "gpt-4"));
    expect(ok<{ items: unknown[] }>(await reader.get(`/v1/entitlement/${id}`)).items).toHaveLength(1);
    expect(ok<EventPageJson>(await reader.get(`/v1/entitlement/${id}/events`)).total_count).toBe(1);
    for (const [path, body] of writes) {
      expectHttpError(await reader.post(path, { ...body, customer_id: id }), "permission_denied", { details: { required_scope: "write" } });
    }
    expect(await getOne(id, "model")).toEqual(bare("model", "gpt-4"));
  });

  it("another project's key sees none of this project's entitlements and cannot set them", async () => {
    const id = await customer();
    ok(await set({ customer_id: id, feature_key: "model", value: "gpt-4" }));
    const other = new HttpTestClient(s.httpUrl, (await s.createKey({ project: await s.createProject() })).key);
    expect(ok(await other.get(`/v1/entitlement/${id}/model`))).toEqual({ entitlement: null });
    expectHttpError(
      await other.post("/v1/entitlement/set", { customer_id: id, feature_key: "model", value: "x" }),
      "entitlement_customer_not_found",
      {
        details: { customer_id: id },
      },
    );
  });
});
