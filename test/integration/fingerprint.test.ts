import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BusinessType } from "../../gen/velobase/billing/v1/billing.js";
import { fingerprint } from "../../src/domain/fingerprint.js";
import { expectError } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { expectHttpError, type HttpTestClient, httpClientFor, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { slotClientsFor } from "../support/slot-clients.js";

// Labels (description, business_type, metadata, a deposit's name and email) are not part of a
// write's fingerprint; its money fields are. One rule, both transports; and a write stored with
// the fingerprint of before (version 1, the whole request) still replays when retried as it was.
let s: TestServer;
let http: HttpTestClient;

beforeAll(async () => {
  s = await startTestServer();
  http = await httpClientFor(s);
});
afterAll(async () => s?.stop());

async function funded(amount: bigint): Promise<string> {
  const customerId = uid("fp");
  await s.client.call("deposit", { customerId, amount });
  return customerId;
}

describe("over gRPC", () => {
  it("replays a Deduct retried with another description, business type and metadata; refuses another amount", async () => {
    const customerId = await funded(100n);
    const transactionId = uid("tx");
    const first = await s.client.call("deduct", {
      customerId,
      transactionId,
      amount: 10n,
      businessType: BusinessType.BUSINESS_TYPE_TASK,
      description: "API call",
      metadata: { job: "1" },
    });
    const again = await s.client.call("deduct", { customerId, transactionId, amount: 10n, description: "retried" });
    expect(again).toEqual({ ...first, isIdempotentReplay: true });
    await expectError(s.client.call("deduct", { customerId, transactionId, amount: 11n }), "idempotency_conflict");
    await expectError(s.client.call("deduct", { customerId, transactionId, amount: 10n, creditTypes: ["paid"] }), "idempotency_conflict");
    expect((await s.client.call("getCustomer", { customerId })).balance?.available).toBe(90n);
  });

  it("replays a Freeze retried with other labels; refuses another hold deadline", async () => {
    const customerId = await funded(100n);
    const transactionId = uid("hold");
    const first = await s.client.call("freeze", { customerId, transactionId, amount: 30n, unfreezeAfterSeconds: 60n, description: "a" });
    const again = await s.client.call("freeze", {
      customerId,
      transactionId,
      amount: 30n,
      unfreezeAfterSeconds: 60n,
      businessType: BusinessType.BUSINESS_TYPE_ORDER,
      metadata: { retry: "yes" },
    });
    expect(again).toEqual({ ...first, isIdempotentReplay: true });
    await expectError(
      s.client.call("freeze", { customerId, transactionId, amount: 30n, unfreezeAfterSeconds: 61n }),
      "idempotency_conflict",
    );
  });

  it("replays a keyed Deposit retried with another name, email, description and metadata; refuses another source", async () => {
    const customerId = uid("fp");
    const idempotencyKey = uid("dep");
    const request = { customerId, amount: 50n, idempotencyKey, creditType: "paid" };
    const first = await s.client.call("deposit", { ...request, name: "Ada", email: "ada@example.com", description: "top-up" });
    const again = await s.client.call("deposit", { ...request, name: "Bob", metadata: { plan: "pro" } });
    expect(again).toEqual({ ...first, isIdempotentReplay: true });
    await expectError(s.client.call("deposit", { ...request, source: "promo" }), "idempotency_conflict");
    await expectError(s.client.call("deposit", { ...request, creditType: "free" }), "idempotency_conflict");
    const customer = await s.client.call("getCustomer", { customerId });
    expect({ name: customer.name, total: customer.balance?.total }).toEqual({ name: "Ada", total: 50n });
  });

  it("replays a slot grant retried with another description", async () => {
    const clients = slotClientsFor(s.app.port, s.apiKey);
    try {
      const customerId = uid("fp");
      const request = { customerId, wallet: "seat", amount: 3n, idempotencyKey: uid("grant") };
      const first = await clients.slots.call("grantCapacity", { ...request, description: "plan" });
      expect(await clients.slots.call("grantCapacity", { ...request, description: "retried" })).toEqual({
        ...first,
        isIdempotentReplay: true,
      });
      await expectError(clients.slots.call("grantCapacity", { ...request, amount: 4n }), "idempotency_conflict");
    } finally {
      clients.close();
    }
  });
});

describe("over HTTP", () => {
  it("replays a Deduct retried without its description and business type (Velobase's Python SDK suite)", async () => {
    const customerId = await funded(100n);
    const body = { customer_id: customerId, transaction_id: uid("tx"), amount: 50 };
    const first = ok(await http.post("/v1/billing/deduct", { ...body, business_type: "TASK", description: "API call charge" }));
    expect(ok(await http.post("/v1/billing/deduct", body))).toEqual({ ...first, is_idempotent_replay: true });
    expect(ok(await http.post("/v1/billing/deduct", { ...body, metadata: { nested: { a: 1 } } }))).toEqual({
      ...first,
      is_idempotent_replay: true,
    });
    expectHttpError(await http.post("/v1/billing/deduct", { ...body, amount: 51 }), "idempotency_conflict");
    expectHttpError(await http.post("/v1/billing/deduct", { ...body, wallet: "paid" }), "idempotency_conflict");
  });

  it("replays a keyed deposit retried with other labels; refuses another expiry", async () => {
    const customerId = uid("fp");
    const body = { customer_id: customerId, amount: 20, idempotency_key: uid("dep"), expires_at: "2099-01-01" };
    const first = ok(await http.post("/v1/customers/deposit", { ...body, name: "Ada", description: "first" }));
    expect(ok(await http.post("/v1/customers/deposit", { ...body, email: "a@example.com", metadata: { x: 1 } }))).toEqual({
      ...first,
      is_idempotent_replay: true,
    });
    expectHttpError(await http.post("/v1/customers/deposit", { ...body, expires_at: "2099-01-02" }), "idempotency_conflict");
  });

  it("answers a key reused across transports by the same rule (gRPC write, HTTP retry with other labels)", async () => {
    const customerId = await funded(100n);
    const transactionId = uid("tx");
    await s.client.call("freeze", { customerId, transactionId, amount: 5n, description: "over gRPC" });
    const replay = ok(
      await http.post("/v1/billing/freeze", {
        customer_id: customerId,
        transaction_id: transactionId,
        amount: 5,
        description: "over HTTP",
      }),
    );
    expect(replay).toMatchObject({ transaction_id: transactionId, frozen_amount: 5, is_idempotent_replay: true });
  });
});

describe("a write stored before labels left the fingerprint (version 1)", () => {
  /** Puts back the fingerprint the code before version 2 stored for this key. */
  async function storeVersion1(key: string, scope: string, canonicalRequest: Record<string, unknown>): Promise<void> {
    const connection = await mysql.createConnection(s.databaseUrl);
    try {
      const [result] = await connection.query(
        "UPDATE idempotency_outcomes SET request_fingerprint = ? WHERE scope = ? AND idempotency_key = ?",
        [fingerprint(canonicalRequest), scope, key],
      );
      expect((result as { affectedRows: number }).affectedRows).toBe(1);
    } finally {
      await connection.end();
    }
  }

  it("replays a Freeze retried exactly as it was, and refuses it with another label (the old rule)", async () => {
    const customerId = await funded(100n);
    const transactionId = uid("hold");
    const request = { customerId, transactionId, amount: 20n, description: "old job" };
    const first = await s.client.call("freeze", request);
    await storeVersion1(transactionId, "SPEND", {
      op: "FREEZE",
      customerId,
      transactionId,
      amount: 20n,
      creditTypes: [],
      businessType: 0,
      description: "old job",
      metadata: {},
      autoSettlement: null,
    });
    expect(await s.client.call("freeze", request)).toEqual({ ...first, isIdempotentReplay: true });
    await expectError(s.client.call("freeze", { ...request, description: "new label" }), "idempotency_conflict");
  });

  it("replays a keyed Deposit retried exactly as it was, over gRPC and over HTTP", async () => {
    const customerId = uid("fp");
    const idempotencyKey = uid("dep");
    const first = await s.client.call("deposit", { customerId, amount: 30n, idempotencyKey, name: "Ada" });
    await storeVersion1(idempotencyKey, "DEPOSIT", {
      op: "deposit",
      customerId,
      amount: 30n,
      creditType: "default",
      source: "default",
      startsAtMs: null,
      expiresAtMs: null,
      name: "Ada",
      email: "",
      description: "",
      metadata: {},
    });
    expect(await s.client.call("deposit", { customerId, amount: 30n, idempotencyKey, name: "Ada" })).toEqual({
      ...first,
      isIdempotentReplay: true,
    });
    const overHttp = ok(
      await http.post("/v1/customers/deposit", { customer_id: customerId, amount: 30, idempotency_key: idempotencyKey, name: "Ada" }),
    );
    expect(overHttp).toMatchObject({ added_amount: 30, total_amount: 30, is_idempotent_replay: true });
    await expectError(s.client.call("deposit", { customerId, amount: 31n, idempotencyKey, name: "Ada" }), "idempotency_conflict");
  });
});
