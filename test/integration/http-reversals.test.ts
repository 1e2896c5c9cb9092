import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLedger } from "../../src/operations/verify.js";
import { SECOND, uid } from "../support/fixtures.js";
import { expectHttpError, HttpTestClient, httpClientFor, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";

// POST /v1/billing/refund and POST /v1/customers/deposit/void against the real HTTP server: the
// same operations as gRPC's Refund and VoidDeposit, in the HTTP API's JSON.

let s: TestServer;
let http: HttpTestClient;
beforeAll(async () => {
  s = await startTestServer();
  http = await httpClientFor(s);
});
afterAll(async () => {
  await s?.stop();
});

async function deposit(customerId: string, amount: number, extra: Record<string, unknown> = {}) {
  return ok<{ record_id: string; account_id: string }>(
    await http.post("/v1/customers/deposit", { customer_id: customerId, amount, ...extra }),
  );
}

async function deduct(customerId: string, amount: number): Promise<string> {
  const transactionId = uid("tx");
  ok(await http.post("/v1/billing/deduct", { customer_id: customerId, transaction_id: transactionId, amount }));
  return transactionId;
}

describe("POST /v1/billing/refund", () => {
  it("gives a charge back to its accounts, replays, and shows on the ledger", async () => {
    const customerId = uid("cust");
    const soon = await deposit(customerId, 100, { expires_at: new Date(s.clock.now() + 10 * SECOND).toISOString() });
    const never = await deposit(customerId, 100);
    const transactionId = await deduct(customerId, 150);
    const body = { transaction_id: transactionId, refund_id: uid("refund"), amount: 60, reason: "late delivery", metadata: { order: 42 } };
    const first = ok(await http.post("/v1/billing/refund", body));
    expect(first).toEqual({
      refund_id: body.refund_id,
      transaction_id: transactionId,
      refunded_amount: 60,
      restored_amount: 60,
      expired_amount: 0,
      refund_details: [
        { account_id: never.account_id, wallet: "default", amount: 50, expired: false },
        { account_id: soon.account_id, wallet: "default", amount: 10, expired: false },
      ],
      refunded_at: new Date(s.clock.now()).toISOString(),
      balance: { total: 200, used: 90, frozen: 0, available: 110 },
      is_idempotent_replay: false,
    });
    expect(ok(await http.post("/v1/billing/refund", body))).toEqual({ ...first, is_idempotent_replay: true });
    expectHttpError(await http.post("/v1/billing/refund", { ...body, amount: 61 }), "idempotency_conflict");

    s.clock.advance(20 * SECOND);
    const rest = ok(await http.post("/v1/billing/refund", { transaction_id: transactionId, refund_id: uid("refund") }));
    expect(rest).toMatchObject({ refunded_amount: 90, restored_amount: 0, expired_amount: 90 });

    const ledger = ok<{ items: Record<string, unknown>[] }>(await http.get(`/v1/customers/${customerId}/ledger?operation_type=REFUND`));
    expect(ledger.items.map((i) => [i.operation_type, i.amount, i.reverses_transaction_id, i.transaction_id, i.description])).toEqual([
      ["REFUND", 90, transactionId, transactionId, null],
      ["REFUND", 10, transactionId, transactionId, "late delivery"],
      ["REFUND", 50, transactionId, transactionId, "late delivery"],
    ]);
    const filtered = ok<{ items: unknown[] }>(
      await http.get(`/v1/customers/${customerId}/ledger?reverses_transaction_id=${transactionId}`),
    );
    expect(filtered.items).toHaveLength(3);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("takes an empty customer_id on a refund, a Consume and an Unfreeze as none, as gRPC does, and refuses a malformed one", async () => {
    const customerId = uid("cust");
    await deposit(customerId, 100);
    const charged = await deduct(customerId, 30);
    expect(ok(await http.post("/v1/billing/refund", { transaction_id: charged, refund_id: uid("refund"), customer_id: "" }))).toMatchObject(
      {
        refunded_amount: 30,
      },
    );
    const [toConsume, toUnfreeze] = [uid("hold"), uid("hold")];
    for (const transactionId of [toConsume, toUnfreeze]) {
      ok(await http.post("/v1/billing/freeze", { customer_id: customerId, transaction_id: transactionId, amount: 20 }));
    }
    expect(ok(await http.post("/v1/billing/consume", { transaction_id: toConsume, customer_id: "", actual_amount: 5 }))).toMatchObject({
      consumed_amount: 5,
    });
    expect(ok(await http.post("/v1/billing/unfreeze", { transaction_id: toUnfreeze, customer_id: "" }))).toMatchObject({
      unfrozen_amount: 20,
    });
    expectHttpError(
      await http.post("/v1/billing/refund", { transaction_id: toConsume, refund_id: uid("refund"), customer_id: "not an id" }),
      "invalid_argument",
      { message: "customer_id must be 1-128 characters of [A-Za-z0-9_.:@-].", details: { field: "customer_id" } },
    );
    expect(ok(await http.get(`/v1/customers/${customerId}`))).toMatchObject({ balance: { total: 100, used: 5, frozen: 0, available: 95 } });
  });

  it("answers each refusal with its code and facts", async () => {
    const customerId = uid("cust");
    await deposit(customerId, 100);
    const transactionId = await deduct(customerId, 40);
    const refund = (body: Record<string, unknown>) =>
      http.post("/v1/billing/refund", { transaction_id: transactionId, refund_id: uid("refund"), ...body });
    expectHttpError(await refund({ amount: 41 }), "refund_exceeds_refundable", { details: { requested: 41, refundable: 40 } });
    const unknown = uid("unknown");
    expectHttpError(await refund({ transaction_id: unknown }), "transaction_not_found", { details: { transaction_id: unknown } });
    const other = uid("other");
    expectHttpError(await refund({ customer_id: other }), "customer_scope_mismatch", { details: { customer_id: other } });
    const hold = uid("hold");
    ok(await http.post("/v1/billing/freeze", { customer_id: customerId, transaction_id: hold, amount: 10 }));
    expectHttpError(await refund({ transaction_id: hold }), "transaction_not_refundable", {
      details: { transaction_id: hold, status: "FROZEN" },
    });
  });
});

describe("POST /v1/customers/deposit/void", () => {
  it("voids what a partly used deposit still has, then refuses, and shows on the ledger", async () => {
    const customerId = uid("cust");
    const d = await deposit(customerId, 100);
    await deduct(customerId, 30);
    const body = { customer_id: customerId, record_id: d.record_id, void_id: uid("void") };
    const first = ok(await http.post("/v1/customers/deposit/void", body));
    expect(first).toEqual({
      void_id: body.void_id,
      record_id: d.record_id,
      voided_amount: 70,
      voided_at: new Date(s.clock.now()).toISOString(),
      balance: { total: 30, used: 30, frozen: 0, available: 0 },
      is_idempotent_replay: false,
    });
    expect(ok(await http.post("/v1/customers/deposit/void", body))).toEqual({ ...first, is_idempotent_replay: true });
    expectHttpError(await http.post("/v1/customers/deposit/void", { ...body, void_id: uid("void") }), "deposit_not_voidable", {
      details: { record_id: d.record_id, voidable: 0 },
    });
    // An amount asked for is a fact of the refusal too, even when nothing is left to void.
    expectHttpError(await http.post("/v1/customers/deposit/void", { ...body, void_id: uid("void"), amount: 5 }), "deposit_not_voidable", {
      details: { record_id: d.record_id, requested: 5, voidable: 0 },
    });
    expectHttpError(
      await http.post("/v1/customers/deposit/void", { ...body, void_id: uid("void"), record_id: "99999999" }),
      "deposit_not_found",
      {
        details: { record_id: "99999999" },
      },
    );
    const ledger = ok<{ items: Record<string, unknown>[] }>(
      await http.get(`/v1/customers/${customerId}/ledger?reverses_record_id=${d.record_id}`),
    );
    expect(ledger.items.map((i) => [i.operation_type, i.amount, i.reverses_record_id])).toEqual([["VOID", 70, d.record_id]]);
  });
});

describe("keys", () => {
  it("a read key is refused both writes; another project's key finds neither the charge nor the deposit", async () => {
    const customerId = uid("cust");
    const d = await deposit(customerId, 100);
    const transactionId = await deduct(customerId, 10);
    const reader = new HttpTestClient(s.httpUrl, (await s.createKey({ scope: "read" })).key);
    const refund = { transaction_id: transactionId, refund_id: uid("refund") };
    const voiding = { customer_id: customerId, record_id: d.record_id, void_id: uid("void") };
    expectHttpError(await reader.post("/v1/billing/refund", refund), "permission_denied", { details: { required_scope: "write" } });
    expectHttpError(await reader.post("/v1/customers/deposit/void", voiding), "permission_denied", {
      details: { required_scope: "write" },
    });
    const stranger = new HttpTestClient(s.httpUrl, (await s.createKey({ project: await s.createProject() })).key);
    ok(await stranger.post("/v1/customers/deposit", { customer_id: customerId, amount: 5 }));
    expectHttpError(await stranger.post("/v1/billing/refund", refund), "transaction_not_found", {
      details: { transaction_id: transactionId },
    });
    expectHttpError(await stranger.post("/v1/customers/deposit/void", voiding), "deposit_not_found", {
      details: { record_id: d.record_id },
    });
  });
});
