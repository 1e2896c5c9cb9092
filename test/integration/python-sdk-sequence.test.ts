import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uid } from "../support/fixtures.js";
import { expectHttpError, type HttpTestClient, httpClientFor, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";

// The sequence Velobase's Python SDK (velobase-billing-python 0.2.0) walks in its own
// integration suite, as plain HTTP: the fields its pydantic models require (a customer's
// `balance` and `accounts`, `credit_type` on ledger items and deposits) and the retries it expects
// to replay (labels dropped). The SDK itself is run by hand against `npm start` (see README).
let s: TestServer;
let http: HttpTestClient;

beforeAll(async () => {
  s = await startTestServer();
  http = await httpClientFor(s);
});
afterAll(async () => s?.stop());

interface Balance {
  readonly total: number;
  readonly used: number;
  readonly frozen: number;
  readonly available: number;
}
const balance = (total: number, used: number, frozen: number): Balance => ({ total, used, frozen, available: total - used - frozen });

describe("Velobase's Python SDK sequence over HTTP", () => {
  const customer = uid("py_user");
  const balanceOf = async () => ok<{ balance: Balance }>(await http.get(`/v1/customers/${customer}`)).balance;

  it("refuses unknown and malformed keys as auth_error 401", async () => {
    expectHttpError(await http.get("/v1/customers/anyone", { key: "vb_live_fake" }), "invalid_api_key");
    expectHttpError(
      await http.post("/v1/billing/freeze", { customer_id: "x", amount: 1, transaction_id: "b" }, { key: "garbage" }),
      "invalid_api_key",
    );
    expectHttpError(await http.get("/v1/customers/nonexistent_ghost_user"), "customer_not_found", {
      details: { customer_id: "nonexistent_ghost_user" },
    });
  });

  it("deposits, then reads the customer in both shapes (balance + accounts, and wallets)", async () => {
    const deposit = ok(await http.post("/v1/customers/deposit", { customer_id: customer, amount: 1000, description: "Initial deposit" }));
    expect(deposit).toEqual({
      customer_id: customer,
      account_id: expect.stringMatching(/^\d+$/),
      wallet: "default",
      credit_type: "default",
      source: "default",
      total_amount: 1000,
      added_amount: 1000,
      starts_at: null,
      expires_at: null,
      record_id: expect.stringMatching(/^\d+$/),
      is_idempotent_replay: false,
    });
    const got = ok(await http.get(`/v1/customers/${customer}`));
    expect(got).toEqual({
      id: customer,
      name: null,
      email: null,
      metadata: null,
      balance: balance(1000, 0, 0),
      accounts: [{ account_type: "CREDIT", credit_type: "default", ...balance(1000, 0, 0), starts_at: null, expires_at: null }],
      wallets: { default: { ...balance(1000, 0, 0), sources: [expect.objectContaining({ source: "default", total: 1000 })] } },
      created_at: expect.stringMatching(/Z$/),
    });

    const key = uid("py_idem");
    expect(ok(await http.post("/v1/customers/deposit", { customer_id: customer, amount: 500, idempotency_key: key }))).toMatchObject({
      is_idempotent_replay: false,
    });
    expect(ok(await http.post("/v1/customers/deposit", { customer_id: customer, amount: 500, idempotency_key: key }))).toMatchObject({
      is_idempotent_replay: true,
    });
    expect(await balanceOf()).toEqual(balance(1500, 0, 0));
  });

  it("freezes, replays the freeze without its description, consumes part, unfreezes, consumes whole", async () => {
    const txn1 = `${customer}_txn1`;
    const frozen = ok(
      await http.post("/v1/billing/freeze", {
        customer_id: customer,
        amount: 600,
        transaction_id: txn1,
        description: "Video generation job",
      }),
    );
    expect(frozen).toMatchObject({ transaction_id: txn1, frozen_amount: 600, is_idempotent_replay: false });
    expect(await balanceOf()).toEqual(balance(1500, 0, 600));
    expect(ok(await http.post("/v1/billing/freeze", { customer_id: customer, amount: 600, transaction_id: txn1 }))).toEqual({
      ...frozen,
      is_idempotent_replay: true,
    });
    expect(ok(await http.post("/v1/billing/consume", { transaction_id: txn1, actual_amount: 400 }))).toMatchObject({
      transaction_id: txn1,
      consumed_amount: 400,
      returned_amount: 200,
      is_idempotent_replay: false,
    });
    expect(await balanceOf()).toEqual(balance(1500, 400, 0));

    const txn2 = `${customer}_txn2`;
    ok(await http.post("/v1/billing/freeze", { customer_id: customer, amount: 300, transaction_id: txn2 }));
    expect(await balanceOf()).toEqual(balance(1500, 400, 300));
    expect(ok(await http.post("/v1/billing/unfreeze", { transaction_id: txn2 }))).toMatchObject({
      transaction_id: txn2,
      unfrozen_amount: 300,
      is_idempotent_replay: false,
    });
    expect(await balanceOf()).toEqual(balance(1500, 400, 0));

    const txn3 = `${customer}_txn3`;
    ok(await http.post("/v1/billing/freeze", { customer_id: customer, amount: 200, transaction_id: txn3 }));
    const whole = ok(await http.post("/v1/billing/consume", { transaction_id: txn3 }));
    expect(whole.consumed_amount).toBe(200);
    expect(whole.returned_amount).toBeUndefined();
    expect(await balanceOf()).toEqual(balance(1500, 600, 0));
  });

  it("deducts, replays the deduct without its business type and description, refuses too much", async () => {
    const txn = `${customer}_deduct1`;
    const deducted = ok(
      await http.post("/v1/billing/deduct", {
        customer_id: customer,
        amount: 50,
        transaction_id: txn,
        business_type: "TASK",
        description: "API call charge",
      }),
    );
    expect(deducted).toMatchObject({ transaction_id: txn, deducted_amount: 50, is_idempotent_replay: false });
    expect(await balanceOf()).toEqual(balance(1500, 650, 0));
    expect(ok(await http.post("/v1/billing/deduct", { customer_id: customer, amount: 50, transaction_id: txn }))).toEqual({
      ...deducted,
      is_idempotent_replay: true,
    });
    expect(await balanceOf()).toEqual(balance(1500, 650, 0));
    const refused = await http.post("/v1/billing/deduct", { customer_id: customer, amount: 999999, transaction_id: `${customer}_fail` });
    expect(refused.status).toBe(400);
  });

  it("lists the ledger with credit_type on every item, filters and pages it", async () => {
    const ledger = ok<{ items: Array<Record<string, unknown>>; total_count: number; has_more: boolean }>(
      await http.get(`/v1/customers/${customer}/ledger`),
    );
    // Deposits 2, freezes 3, consume 1 + its return 1, unfreeze 1, whole consume 1, deduct 1.
    expect({ total: ledger.total_count, has_more: ledger.has_more }).toEqual({ total: 10, has_more: false });
    for (const item of ledger.items) {
      expect(item).toMatchObject({ credit_type: "default", wallet: "default", status: "COMPLETED" });
      expect(typeof item.business_type).toBe("string");
    }
    // Velobase's five operation types only: the deduct reads as a consume (without a hold).
    expect(new Set(ledger.items.map((i) => i.operation_type))).toEqual(new Set(["GRANT", "FREEZE", "CONSUME", "UNFREEZE"]));
    expect(ledger.items[0]).toMatchObject({ operation_type: "CONSUME", amount: 50, business_type: "TASK" });
    const consumes = ok<{ items: Array<{ amount: number }> }>(await http.get(`/v1/customers/${customer}/ledger?operation_type=CONSUME`));
    expect(consumes.items.map((i) => i.amount)).toEqual([50, 200, 400]);
    const deducts = ok<{ items: Array<{ amount: number }> }>(await http.get(`/v1/customers/${customer}/ledger?operation_type=DEDUCT`));
    expect(deducts.items.map((i) => i.amount)).toEqual([50]);
    const grants = ok<{ items: Array<{ operation_type: string }> }>(
      await http.get(`/v1/customers/${customer}/ledger?operation_type=GRANT`),
    );
    expect(grants.items.map((i) => i.operation_type)).toEqual(["GRANT", "GRANT"]);
    const txn1 = ok<{ items: Array<{ transaction_id: string }> }>(
      await http.get(`/v1/customers/${customer}/ledger?transaction_id=${customer}_txn1`),
    );
    expect(txn1.items.map((i) => i.transaction_id)).toEqual([`${customer}_txn1`, `${customer}_txn1`, `${customer}_txn1`]);
    const page1 = ok<{ items: Array<{ id: string }>; has_more: boolean; next_cursor: string }>(
      await http.get(`/v1/customers/${customer}/ledger?limit=2`),
    );
    expect(page1.has_more).toBe(true);
    const page2 = ok<{ items: Array<{ id: string }> }>(
      await http.get(`/v1/customers/${customer}/ledger?limit=2&cursor=${encodeURIComponent(page1.next_cursor)}`),
    );
    expect(page2.items).toHaveLength(2);
    expect(page2.items[0]?.id).not.toBe(page1.items[0]?.id);
    expectHttpError(await http.get("/v1/customers/nonexistent_ghost_user/ledger"), "customer_not_found", {
      details: { customer_id: "nonexistent_ghost_user" },
    });
  });

  it("refuses what the SDK expects refused, with the codes it maps to its errors", async () => {
    expectHttpError(
      await http.post("/v1/billing/freeze", { customer_id: customer, amount: 999999, transaction_id: uid("f") }),
      "insufficient_balance",
      { details: { requested: 999999, available: 850, wallet: "*" } },
    );
    expectHttpError(await http.post("/v1/billing/consume", { transaction_id: "nonexistent_txn_id" }), "no_consumable_freeze_records");
    for (const amount of [0, -1]) {
      expectHttpError(await http.post("/v1/customers/deposit", { customer_id: customer, amount }), "amount_must_be_positive", {
        details: { field: "amount" },
      });
    }
    expectHttpError(await http.post("/v1/billing/freeze", { customer_id: "", amount: 100, transaction_id: "x" }), "customer_id_required", {
      message: "customer_id is required.",
      details: { field: "customer_id" },
    });
    expectHttpError(await http.post("/v1/billing/unfreeze", { transaction_id: "nonexistent_txn_id" }), "no_unfreezable_records");
    expect(await balanceOf()).toEqual(balance(1500, 650, 0));
  });
});
