import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DAY, uid } from "../support/fixtures.js";
import { expectHttpError, httpClientFor, ok, type HttpTestClient } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";

// The HTTP API over real HTTP (fetch) against the started server: every route's answer, the
// conventions (omitted zero fields, ISO 8601, Idempotency-Key, X-Request-Id), and the same data
// seen over gRPC and HTTP.
let s: TestServer;
let http: HttpTestClient;
const NOW = Date.UTC(2026, 0, 1);
const iso = (ms: number) => new Date(ms).toISOString();
const anyId = expect.stringMatching(/^\d+$/);

beforeAll(async () => {
  s = await startTestServer();
  http = await httpClientFor(s);
});
afterAll(async () => s?.stop());

const deposit = (body: Record<string, unknown>, headers?: Record<string, string>) =>
  http.post("/v1/customers/deposit", body, headers ? { headers } : {});

describe("POST /v1/customers/deposit", () => {
  it("credits the default wallet and answers Velobase's fields", async () => {
    const customer = uid("cust");
    const body = ok(await deposit({ customer_id: customer, amount: 100 }));
    expect(body).toEqual({
      customer_id: customer,
      account_id: anyId,
      wallet: "default",
      credit_type: "default",
      source: "default",
      total_amount: 100,
      added_amount: 100,
      starts_at: null,
      expires_at: null,
      record_id: anyId,
      is_idempotent_replay: false,
    });
    // An empty source is none given, as over gRPC: the default.
    expect(ok(await deposit({ customer_id: customer, amount: 1, source: "" }))).toMatchObject({ source: "default", total_amount: 101 });
    const again = ok(await deposit({ customer_id: customer, amount: 50 }));
    expect(again).toMatchObject({ account_id: body.account_id, total_amount: 151, added_amount: 50 });
  });

  it("takes every optional field; metadata is stored as given, any JSON", async () => {
    const customer = uid("cust");
    const metadata = { plan: "pro", seats: 3, trial: false, tags: ["a", "b"], owner: { id: 7, note: null } };
    const body = ok(
      await deposit({
        customer_id: customer,
        amount: 250,
        wallet: "paid",
        source: "stripe",
        starts_at: "2025-12-31T20:00:00-04:00",
        expires_at: "2027-01-01",
        idempotency_key: uid("key"),
        name: "Ada",
        email: "ada@example.com",
        metadata,
        description: "top-up",
      }),
    );
    expect(body).toMatchObject({
      wallet: "paid",
      source: "stripe",
      total_amount: 250,
      starts_at: "2026-01-01T00:00:00.000Z",
      expires_at: "2027-01-01T00:00:00.000Z",
    });
    const customerBody = ok(await http.get(`/v1/customers/${customer}`));
    expect(customerBody).toMatchObject({ name: "Ada", email: "ada@example.com", metadata });
    // The customer keeps its first deposit's labels; each entry shows its own write's metadata.
    const ownKeys = JSON.parse('{"__proto__":{"x":1},"constructor":"c"}') as Record<string, unknown>;
    ok(await deposit({ customer_id: customer, amount: 1, metadata: ownKeys }));
    ok(await deposit({ customer_id: customer, amount: 2 }));
    const ledger = ok<{ items: { amount: number; metadata: unknown }[] }>(await http.get(`/v1/customers/${customer}/ledger`));
    expect(ledger.items.map((i) => [i.amount, i.metadata])).toEqual([
      [2, null],
      [1, ownKeys],
      [250, metadata],
    ]);
  });

  it("accepts credit_type as the older name of wallet", async () => {
    const body = ok(await deposit({ customer_id: uid("cust"), amount: 5, credit_type: "bonus" }));
    expect(body.wallet).toBe("bonus");
  });

  /** The wallets of a customer credited 10 once, however often the deposit was sent. */
  const TEN = { total: 10, used: 0, frozen: 0, available: 10 };
  const TEN_CREDITED_ONCE = { default: { ...TEN, sources: [{ ...TEN, source: "default", starts_at: null, expires_at: null }] } };

  it("replays with the Idempotency-Key header, alone or with the same body key", async () => {
    const customer = uid("cust");
    const key = uid("key");
    const first = ok(await deposit({ customer_id: customer, amount: 10 }, { "Idempotency-Key": key }));
    const replay = ok(await deposit({ customer_id: customer, amount: 10 }, { "Idempotency-Key": key }));
    const both = ok(await deposit({ customer_id: customer, amount: 10, idempotency_key: key }, { "Idempotency-Key": key }));
    const bodyOnly = ok(await deposit({ customer_id: customer, amount: 10, idempotency_key: key }));
    expect(first.is_idempotent_replay).toBe(false);
    for (const r of [replay, both, bodyOnly]) expect(r).toEqual({ ...first, is_idempotent_replay: true });
    expect(ok(await http.get(`/v1/customers/${customer}`)).wallets).toEqual(TEN_CREDITED_ONCE);
  });

  it("refuses an Idempotency-Key header sent empty (an unset variable) instead of crediting on every retry", async () => {
    const customer = uid("cust");
    const details = { field: "idempotency_key" };
    for (const empty of ["", "   ", "k1, "]) {
      expectHttpError(await deposit({ customer_id: customer, amount: 10 }, { "Idempotency-Key": empty }), "invalid_argument", {
        message: "The Idempotency-Key header is empty.",
        details,
      });
    }
    expectHttpError(await deposit({ customer_id: customer, amount: 10 }, { "Idempotency-Key": "k1, k2" }), "invalid_argument", {
      message: "The Idempotency-Key header holds different keys.",
      details,
    });
    // The same key sent twice (Node joins the two headers with ", ") is that key.
    const key = uid("key");
    const first = ok(await deposit({ customer_id: customer, amount: 10 }, { "Idempotency-Key": `${key}, ${key}` }));
    const replay = ok(await deposit({ customer_id: customer, amount: 10 }, { "Idempotency-Key": key }));
    expect(replay).toEqual({ ...first, is_idempotent_replay: true });
    expect(ok(await http.get(`/v1/customers/${customer}`)).wallets).toEqual(TEN_CREDITED_ONCE);
  });
});

describe("ISO 8601 timestamps", () => {
  it.each([
    ["an offset", "2026-03-01T08:30:00+08:00", "2026-03-01T00:30:00.000Z"],
    ["a compact offset", "2026-03-01T08:30:00+0800", "2026-03-01T00:30:00.000Z"],
    ["no milliseconds", "2026-03-01T00:30:00Z", "2026-03-01T00:30:00.000Z"],
    ["no seconds", "2026-03-01T00:30Z", "2026-03-01T00:30:00.000Z"],
    ["microseconds (truncated)", "2026-03-01T00:30:00.123456Z", "2026-03-01T00:30:00.123Z"],
    ["a date only (midnight UTC)", "2026-03-01", "2026-03-01T00:00:00.000Z"],
    ["no offset (UTC)", "2026-03-01T00:30:00", "2026-03-01T00:30:00.000Z"],
  ])("parses %s", async (_name, input, output) => {
    const body = ok(await deposit({ customer_id: uid("cust"), amount: 1, expires_at: input }));
    expect(body.expires_at).toBe(output);
  });

  it.each([["garbage"], ["2026-02-30"], ["2026-13-01"], ["2026-03-01T24:00:00Z"], ["2026-03-01T00:00:00+25:00"], ["0000-01-01"], [""]])(
    "refuses %j",
    async (input) => {
      const customer = uid("cust");
      expectHttpError(await deposit({ customer_id: customer, amount: 1, starts_at: input }), "invalid_starts_at", {
        details: { field: "starts_at" },
      });
      expectHttpError(await deposit({ customer_id: customer, amount: 1, expires_at: input }), "invalid_expires_at", {
        message: "expires_at is not a valid timestamp.",
        details: { field: "expires_at" },
      });
    },
  );

  it("answers in UTC with milliseconds", async () => {
    const customer = uid("cust");
    ok(await deposit({ customer_id: customer, amount: 1 }));
    expect(ok(await http.get(`/v1/customers/${customer}`)).created_at).toBe("2026-01-01T00:00:00.000Z");
  });
});

describe("GET /v1/customers/{customer_id}", () => {
  it("shows ACTIVE credits by wallet and source; absent name, email and metadata are null", async () => {
    const customer = uid("cust:a@b");
    ok(await deposit({ customer_id: customer, amount: 100 }));
    ok(await deposit({ customer_id: customer, amount: 40, wallet: "paid", source: "stripe", expires_at: iso(NOW + DAY) }));
    ok(await deposit({ customer_id: customer, amount: 7, wallet: "paid", starts_at: iso(NOW + DAY) })); // pending: not shown
    ok(await http.post("/v1/billing/freeze", { customer_id: customer, amount: 30, transaction_id: uid("tx"), wallet: "paid" }));
    const body = ok(await http.get(`/v1/customers/${encodeURIComponent(customer)}`));
    expect(body).toEqual({
      id: customer,
      name: null,
      email: null,
      metadata: null,
      // The Python SDK's shape: every ACTIVE account, by wallet, each wallet's in spending order.
      balance: { total: 140, used: 0, frozen: 30, available: 110 },
      accounts: [
        {
          account_type: "CREDIT",
          credit_type: "default",
          total: 100,
          used: 0,
          frozen: 0,
          available: 100,
          starts_at: null,
          expires_at: null,
        },
        {
          account_type: "CREDIT",
          credit_type: "paid",
          total: 40,
          used: 0,
          frozen: 30,
          available: 10,
          starts_at: null,
          expires_at: iso(NOW + DAY),
        },
      ],
      wallets: {
        default: {
          total: 100,
          used: 0,
          frozen: 0,
          available: 100,
          sources: [{ source: "default", total: 100, used: 0, frozen: 0, available: 100, starts_at: null, expires_at: null }],
        },
        paid: {
          total: 40,
          used: 0,
          frozen: 30,
          available: 10,
          sources: [{ source: "stripe", total: 40, used: 0, frozen: 30, available: 10, starts_at: null, expires_at: iso(NOW + DAY) }],
        },
      },
      created_at: iso(NOW),
    });
  });
});

describe("GET /v1/customers/{customer_id}/ledger", () => {
  it("lists newest first with total_count, has_more and a cursor; filters by operation and transaction", async () => {
    const customer = uid("cust");
    const tx = uid("tx");
    ok(await deposit({ customer_id: customer, amount: 100, description: "first" }));
    ok(await deposit({ customer_id: customer, amount: 50 }));
    ok(await http.post("/v1/billing/deduct", { customer_id: customer, amount: 30, transaction_id: tx, business_type: "TOKEN_USAGE" }));

    const first = ok<{ items: Array<Record<string, unknown>>; total_count: number; has_more: boolean; next_cursor: string }>(
      await http.get(`/v1/customers/${customer}/ledger?limit=2`),
    );
    expect(first).toMatchObject({ total_count: 3, has_more: true, next_cursor: expect.any(String) });
    expect(first.items).toEqual([
      {
        id: anyId,
        operation_type: "CONSUME",
        amount: 30,
        wallet: "default",
        credit_type: "default",
        source: "default",
        transaction_id: tx,
        business_type: "TOKEN_USAGE",
        description: null,
        metadata: null,
        account_id: anyId,
        status: "COMPLETED",
        overage: false,
        created_at: iso(NOW),
        sequence: 3,
        balance_after: { total: 150, used: 30, frozen: 0, available: 120 },
      },
      expect.objectContaining({ operation_type: "GRANT", amount: 50, transaction_id: null, business_type: "UNDEFINED", sequence: 2 }),
    ]);
    const second = ok(await http.get(`/v1/customers/${customer}/ledger?limit=2&cursor=${first.next_cursor}`));
    expect(second).toEqual({
      items: [expect.objectContaining({ operation_type: "GRANT", amount: 100, description: "first" })],
      total_count: 3,
      has_more: false,
      next_cursor: null,
    });

    for (const name of ["GRANT", "DEPOSIT"]) {
      const grants = ok(await http.get(`/v1/customers/${customer}/ledger?operation_type=${name}`));
      expect(grants).toMatchObject({ total_count: 2, has_more: false, next_cursor: null });
    }
    const byTx = ok<{ items: unknown[]; total_count: number }>(await http.get(`/v1/customers/${customer}/ledger?transaction_id=${tx}`));
    expect(byTx.total_count).toBe(1);
    expect(byTx.items).toEqual([expect.objectContaining({ operation_type: "CONSUME", transaction_id: tx })]);
    const defaults = ok<{ items: unknown[] }>(await http.get(`/v1/customers/${customer}/ledger`));
    expect(defaults.items).toHaveLength(3);

    // A credit-type filter, by our name or Velobase's (an empty one lists all, as over gRPC).
    ok(await deposit({ customer_id: customer, amount: 7, wallet: "paid" }));
    for (const query of ["credit_type=paid", "wallet=paid", "wallet=paid&credit_type=paid"]) {
      const paid = ok<{ items: { wallet: string; amount: number }[]; total_count: number }>(
        await http.get(`/v1/customers/${customer}/ledger?${query}`),
      );
      expect([paid.total_count, paid.items.map((i) => [i.wallet, i.amount])]).toEqual([1, [["paid", 7]]]);
    }
    const bothDefault = ok<{ total_count: number }>(await http.get(`/v1/customers/${customer}/ledger?wallet=default&credit_type=`));
    expect(bothDefault.total_count).toBe(3);
    expect(ok<{ total_count: number }>(await http.get(`/v1/customers/${customer}/ledger?credit_type=`)).total_count).toBe(4);
    expectHttpError(await http.get(`/v1/customers/${customer}/ledger?wallet=paid&credit_type=default`), "invalid_argument", {
      details: { field: "wallet" },
      message: "wallet and credit_type differ; send one of them.",
    });
    expectHttpError(await http.get(`/v1/customers/${customer}/ledger?wallet=BAD`), "invalid_credit_types", {
      details: { field: "wallet" },
      message: 'wallet must be 1-64 characters of [a-z0-9_.-], got "BAD".',
    });
  });
});

describe("billing routes", () => {
  async function funded(amount = 100): Promise<string> {
    const customer = uid("cust");
    ok(await deposit({ customer_id: customer, amount }));
    return customer;
  }

  it("deducts and replays", async () => {
    const customer = await funded();
    const tx = uid("tx");
    const request = { customer_id: customer, amount: 30, transaction_id: tx, wallet: "default", metadata: { job: 1 } };
    const body = ok(await http.post("/v1/billing/deduct", request));
    expect(body).toEqual({
      transaction_id: tx,
      deducted_amount: 30,
      deduct_details: [{ account_id: anyId, wallet: "default", source: "default", amount: 30 }],
      deducted_at: iso(NOW),
      is_idempotent_replay: false,
    });
    expect(ok(await http.post("/v1/billing/deduct", request))).toEqual({ ...body, is_idempotent_replay: true });
  });

  it("freezes with auto-settlement deadlines, then consumes part and returns the rest", async () => {
    const customer = await funded();
    const tx = uid("tx");
    const frozen = ok(
      await http.post("/v1/billing/freeze", {
        customer_id: customer,
        amount: 40,
        transaction_id: tx,
        credit_types: ["default"],
        unfreeze_after_seconds: 60,
      }),
    );
    expect(frozen).toEqual({
      transaction_id: tx,
      frozen_amount: 40,
      freeze_details: [{ account_id: anyId, wallet: "default", source: "default", amount: 40 }],
      unfreeze_after: iso(NOW + 60_000),
      consume_after: null,
      is_idempotent_replay: false,
    });
    const consumed = ok(await http.post("/v1/billing/consume", { transaction_id: tx, actual_amount: 25, customer_id: customer }));
    expect(consumed).toEqual({
      transaction_id: tx,
      consumed_amount: 25,
      returned_amount: 15,
      consume_details: [{ account_id: anyId, wallet: "default", source: "default", consumed: 25 }],
      consumed_at: iso(NOW),
      is_idempotent_replay: false,
    });
    expect(ok(await http.post("/v1/billing/consume", { transaction_id: tx, actual_amount: 25 }))).toEqual({
      ...consumed,
      is_idempotent_replay: true,
    });
    expect(ok(await http.get(`/v1/customers/${customer}`)).wallets).toMatchObject({
      default: { total: 100, used: 25, frozen: 0, available: 75 },
    });
  });

  it("omits returned_amount and overage_amount when they are zero", async () => {
    const customer = await funded();
    const tx = uid("tx");
    ok(await http.post("/v1/billing/freeze", { customer_id: customer, amount: 40, transaction_id: tx, consume_after_seconds: 30 }));
    const body = ok(await http.post("/v1/billing/consume", { transaction_id: tx }));
    expect(body).toEqual({
      transaction_id: tx,
      consumed_amount: 40,
      consume_details: [{ account_id: anyId, wallet: "default", source: "default", consumed: 40 }],
      consumed_at: iso(NOW),
      is_idempotent_replay: false,
    });
    expect(body).not.toHaveProperty("returned_amount");
    expect(body).not.toHaveProperty("overage_amount");
  });

  it("charges overage by default (allow_overage defaults to true)", async () => {
    const customer = await funded();
    const tx = uid("tx");
    ok(await http.post("/v1/billing/freeze", { customer_id: customer, amount: 40, transaction_id: tx }));
    const body = ok(await http.post("/v1/billing/consume", { transaction_id: tx, actual_amount: 55 }));
    expect(body).toEqual({
      transaction_id: tx,
      consumed_amount: 55,
      overage_amount: 15,
      consume_details: [
        { account_id: anyId, wallet: "default", source: "default", consumed: 40 },
        { account_id: anyId, wallet: "default", source: "default", consumed: 15 },
      ],
      consumed_at: iso(NOW),
      is_idempotent_replay: false,
    });
    const ledger = ok<{ items: { operation_type: string; amount: number; overage: boolean }[] }>(
      await http.get(`/v1/customers/${customer}/ledger?transaction_id=${tx}`),
    );
    expect(ledger.items.map((i) => [i.operation_type, i.amount, i.overage])).toEqual([
      ["CONSUME", 15, true],
      ["CONSUME", 40, false],
      ["FREEZE", 40, false],
    ]);
  });

  it("unfreezes and replays", async () => {
    const customer = await funded();
    const tx = uid("tx");
    ok(await http.post("/v1/billing/freeze", { customer_id: customer, amount: 40, transaction_id: tx }));
    const body = ok(await http.post("/v1/billing/unfreeze", { transaction_id: tx, customer_id: customer }));
    expect(body).toEqual({
      transaction_id: tx,
      unfrozen_amount: 40,
      unfreeze_details: [{ account_id: anyId, wallet: "default", source: "default", amount: 40 }],
      unfrozen_at: iso(NOW),
      is_idempotent_replay: false,
    });
    expect(ok(await http.post("/v1/billing/unfreeze", { transaction_id: tx }))).toEqual({ ...body, is_idempotent_replay: true });
  });
});

describe("optional fields sent as JSON null", () => {
  // Velobase's Python SDK sends None as null: every optional field takes null as absent.
  it("deposit: every optional field null is the same as absent; the header key still applies", async () => {
    const customer = uid("cust");
    const nulls = {
      wallet: null,
      credit_type: null,
      source: null,
      starts_at: null,
      expires_at: null,
      idempotency_key: null,
      name: null,
      email: null,
      metadata: null,
      description: null,
    };
    const key = uid("key");
    const body = ok(await deposit({ customer_id: customer, amount: 7, ...nulls }, { "Idempotency-Key": key }));
    expect(body).toEqual({
      customer_id: customer,
      account_id: anyId,
      wallet: "default",
      credit_type: "default",
      source: "default",
      total_amount: 7,
      added_amount: 7,
      starts_at: null,
      expires_at: null,
      record_id: anyId,
      is_idempotent_replay: false,
    });
    expect(ok(await deposit({ customer_id: customer, amount: 7, idempotency_key: key }))).toEqual({ ...body, is_idempotent_replay: true });
    expect(ok(await http.get(`/v1/customers/${customer}`))).toMatchObject({ name: null, email: null, metadata: null });
  });

  it("deduct, freeze, consume and unfreeze: null optional fields are absent", async () => {
    const customer = uid("cust");
    ok(await deposit({ customer_id: customer, amount: 100 }));
    const spendNulls = { wallet: null, credit_types: null, business_type: null, description: null, metadata: null };
    const deducted = ok(
      await http.post("/v1/billing/deduct", { customer_id: customer, amount: 10, transaction_id: uid("tx"), ...spendNulls }),
    );
    expect(deducted).toMatchObject({ deducted_amount: 10, deduct_details: [{ wallet: "default", amount: 10 }] });

    const held = uid("tx");
    const frozen = ok(
      await http.post("/v1/billing/freeze", {
        customer_id: customer,
        amount: 20,
        transaction_id: held,
        ...spendNulls,
        unfreeze_after_seconds: null,
        consume_after_seconds: 60,
      }),
    );
    expect(frozen).toMatchObject({ frozen_amount: 20, unfreeze_after: null, consume_after: iso(NOW + 60_000) });
    const consumed = ok(
      await http.post("/v1/billing/consume", { transaction_id: held, actual_amount: null, customer_id: null, allow_overage: null }),
    );
    expect(consumed).toMatchObject({ consumed_amount: 20 });
    expect(consumed).not.toHaveProperty("returned_amount");

    const other = uid("tx");
    ok(
      await http.post("/v1/billing/freeze", {
        customer_id: customer,
        amount: 5,
        transaction_id: other,
        unfreeze_after_seconds: null,
        consume_after_seconds: null,
      }),
    );
    expect(ok(await http.post("/v1/billing/unfreeze", { transaction_id: other, customer_id: null }))).toMatchObject({ unfrozen_amount: 5 });
    const left = { total: 100, used: 30, frozen: 0, available: 70 };
    expect(ok(await http.get(`/v1/customers/${customer}`)).wallets).toEqual({
      default: { ...left, sources: [{ ...left, source: "default", starts_at: null, expires_at: null }] },
    });
  });

  it("a required field sent as null is missing", async () => {
    expectHttpError(await deposit({ customer_id: null, amount: 1 }), "customer_id_required", {
      message: "customer_id is required.",
      details: { field: "customer_id" },
    });
    expectHttpError(await deposit({ customer_id: uid("cust"), amount: null }), "amount_must_be_positive", {
      message: "amount is required.",
      details: { field: "amount" },
    });
    expectHttpError(await http.post("/v1/billing/unfreeze", { transaction_id: null }), "transaction_id_required", {
      message: "transaction_id is required.",
      details: { field: "transaction_id" },
    });
  });
});

describe("amounts with a fraction", () => {
  const json = { "content-type": "application/json" };
  const raw = (path: string, text: string) => http.request("POST", path, { raw: text, headers: json });

  it("are refused even when a double rounds them to a whole number; 1.0 and 1e1 are whole", async () => {
    const customer = uid("frac");
    ok(await deposit({ customer_id: customer, amount: 100 }));
    for (const amount of ["2.9999999999999999", "1.0000000000000001", "29999999999999999e-16", "1.5"]) {
      expectHttpError(
        await raw("/v1/billing/deduct", `{"customer_id":"${customer}","transaction_id":"${uid("t")}","amount":${amount}}`),
        "amount_must_be_positive",
        { details: { field: "amount" } },
      );
    }
    // Refused as the route refuses any fraction there (its own code for the field).
    const refusal = async (threshold: string) => {
      const { status, body } = await raw("/v1/alerts", `{"customer_id":"${customer}","threshold":${threshold}}`);
      const { code, message, details } = (body as { error: { code: string; message: string; details: unknown } }).error;
      return { status, code, message, details };
    };
    expect(await refusal("12.0000000000000001")).toEqual(await refusal("12.5"));
    expect(await refusal("12.0000000000000001")).toMatchObject({ status: 400, details: { field: "threshold" } });
    expect(ok(await raw("/v1/billing/deduct", `{"customer_id":"${customer}","transaction_id":"${uid("t")}","amount":1.0}`))).toMatchObject({
      deducted_amount: 1,
    });
    // Metadata is data: its numbers are kept as JSON.parse reads them.
    ok(
      await raw(
        "/v1/billing/deduct",
        `{"customer_id":"${customer}","transaction_id":"${uid("t")}","amount":1e1,"metadata":{"x":2.9999999999999999}}`,
      ),
    );
    expect(ok(await http.get(`/v1/customers/${customer}`)).wallets).toMatchObject({ default: { total: 100, used: 11, available: 89 } });
  });

  it("beyond a double's range are refused naming their field, metadata's too", async () => {
    const customer = uid("inf");
    for (const [body, field] of [
      [`{"customer_id":"${customer}","amount":1e400}`, "amount"],
      [`{"customer_id":"${customer}","amount":1${"0".repeat(400)}}`, "amount"],
      [`{"customer_id":"${customer}","amount":5,"metadata":{"inf":-1e309}}`, "metadata"],
    ] as const) {
      expectHttpError(await raw("/v1/customers/deposit", body), "invalid_argument", {
        message: `${field} holds a number beyond what a JSON number can be here (about 1.8e308).`,
        details: { field },
      });
    }
  });

  it("in metadata, are refused when an integer beyond 2^53 would lose digits; kept as parsed otherwise", async () => {
    const customer = uid("big");
    const withMetadata = (metadata: string) =>
      raw("/v1/customers/deposit", `{"customer_id":"${customer}","amount":5,"metadata":${metadata}}`);
    for (const metadata of ['{"order":12345678901234567890}', '{"ids":[1,-12345678901234567890]}', '{"e":1.2345678901234567891e19}']) {
      expectHttpError(await withMetadata(metadata), "invalid_argument", {
        message:
          "metadata holds an integer beyond 2^53 that a JSON number cannot keep exactly (its last digits would be lost): send it as a string.",
        details: { field: "metadata" },
      });
    }
    ok(await withMetadata('{"exact":9007199254740992,"power":1e20,"order":"12345678901234567890","ratio":0.1234567890123456789}'));
    const stored = (await s.client.call("getCustomer", { customerId: customer })).metadata;
    expect(stored).toEqual({
      exact: "9007199254740992",
      power: "100000000000000000000",
      order: "12345678901234567890",
      ratio: "0.12345678901234568",
    });
  });

  it("are looked for in one pass: a body of 32,000 of them in metadata, sent without a key, is answered while the server serves others", async () => {
    // Each such number used to rescan the body up to it: half as many held the process 26-50 s,
    // and these (600 KB) about four times as long, past this test's timeout.
    const metadata = `{"metadata":[${Array.from({ length: 32_000 }, () => "2.9999999999999999").join(",")}]`;
    const [unknown, refused, health] = await Promise.all([
      http.request("POST", "/nope", { raw: `${metadata}}`, headers: json, key: null }),
      raw("/v1/billing/deduct", `${metadata},"amount":2.9999999999999999}`),
      fetch(`${s.httpUrl}/v1/health`),
    ]);
    expect([unknown.status, health.status]).toEqual([404, 200]);
    expectHttpError(refused, "amount_must_be_positive", { details: { field: "amount" } });
  });
});

describe("across transports", () => {
  it("a deposit over HTTP is seen over gRPC, and a deposit over gRPC is seen over HTTP", async () => {
    const customer = uid("cust");
    ok(await deposit({ customer_id: customer, amount: 100, wallet: "paid", metadata: { plan: "pro", seats: 3 } }));
    const overGrpc = await s.client.call("getCustomer", { customerId: customer });
    expect(overGrpc.balance).toEqual({ total: 100n, used: 0n, frozen: 0n, available: 100n });
    expect(overGrpc.creditTypes.map((t) => t.creditType)).toEqual(["paid"]);
    expect(overGrpc.metadata).toEqual({ plan: "pro", seats: "3" });

    await s.client.call("deposit", { customerId: customer, amount: 23n, creditType: "bonus" });
    const overHttp = ok(await http.get(`/v1/customers/${customer}`));
    expect(overHttp.wallets).toMatchObject({ paid: { total: 100, available: 100 }, bonus: { total: 23, available: 23 } });
    expect(overHttp.metadata).toEqual({ plan: "pro", seats: 3 });
  });
});

describe("conventions", () => {
  it("X-Request-Id is echoed on success and on failure, and generated when absent or unusable", async () => {
    const success = await http.get("/v1/health", { headers: { "X-Request-Id": "req-ok-1" } });
    expect(success.headers.get("x-request-id")).toBe("req-ok-1");
    const failure = await http.post("/v1/customers/deposit", { amount: 1 }, { headers: { "X-Request-Id": "req-fail-1" } });
    expect(failure.headers.get("x-request-id")).toBe("req-fail-1");
    expectHttpError(failure, "customer_id_required", { message: "customer_id is required.", details: { field: "customer_id" } });
    const missing = await http.get("/v1/nowhere");
    expect(missing.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const unusable = await http.get("/v1/health", { headers: { "X-Request-Id": "has spaces" } });
    expect(unusable.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("GET /v1/health needs no key", async () => {
    const response = await http.get("/v1/health", { key: null });
    expect({ status: response.status, body: response.body }).toEqual({ status: 200, body: { status: "ok" } });
  });

  it("an unknown route is 404 not_found", async () => {
    expectHttpError(await http.get("/v1/nothing/here"), "not_found");
    expectHttpError(await http.post("/v1/billing/reverse", {}, { key: null }), "not_found");
  });

  it("a body that is not JSON is 400 invalid_argument", async () => {
    const json = { "content-type": "application/json" };
    const bodyError = { message: "The request body must be a JSON object.", details: { field: "body" } };
    expectHttpError(
      await http.request("POST", "/v1/customers/deposit", { raw: "{not json", headers: json }),
      "invalid_argument",
      bodyError,
    );
    expectHttpError(await http.request("POST", "/v1/customers/deposit", { raw: "", headers: json }), "invalid_argument", bodyError);
    expectHttpError(
      await http.request("POST", "/v1/customers/deposit", { raw: "customer_id=a", headers: { "content-type": "text/plain" } }),
      "invalid_argument",
      bodyError,
    );
    for (const raw of ["[1]", "42", "null"]) {
      expectHttpError(await http.request("POST", "/v1/billing/deduct", { raw, headers: json }), "invalid_argument", bodyError);
    }
  });

  it("the key may come as Authorization: Bearer or as x-api-key", async () => {
    const key = http.key ?? "";
    expect((await http.get("/v1/customers/nobody", { key: null, headers: { "x-api-key": key } })).status).toBe(404);
    expect((await http.get("/v1/customers/nobody", { key: null, headers: { authorization: `bearer ${key}` } })).status).toBe(404);
  });

  it("without a usable key: 401 missing_api_key or invalid_api_key", async () => {
    const routes: Array<[string, string]> = [
      ["POST", "/v1/customers/deposit"],
      ["GET", "/v1/customers/c1"],
      ["GET", "/v1/customers/c1/ledger"],
      ["POST", "/v1/billing/freeze"],
      ["POST", "/v1/billing/consume"],
      ["POST", "/v1/billing/unfreeze"],
      ["POST", "/v1/billing/deduct"],
    ];
    for (const [method, path] of routes) {
      const body = method === "POST" ? {} : undefined;
      expectHttpError(await http.request(method, path, { key: null, body }), "missing_api_key");
      expectHttpError(await http.request(method, path, { key: "vb_live_fake", body }), "invalid_api_key");
      expectHttpError(await http.request(method, path, { key: "garbage", body }), "invalid_api_key");
      expectHttpError(
        await http.request(method, path, { key: null, body, headers: { authorization: "Basic dXNlcjpwdw==" } }),
        "invalid_api_key",
      );
    }
  });
});
