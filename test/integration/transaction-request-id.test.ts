import { Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTransaction } from "../../src/operations/get-transaction.js";
import { uid } from "../support/fixtures.js";
import { expectHttpError, HttpTestClient, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";

// The request id of the call that made a transaction is stored with it (the console shows it),
// and the HTTP ledger takes the date filters gRPC has.

let server: TestServer;
let api: HttpTestClient;

beforeAll(async () => {
  server = await startTestServer();
  api = new HttpTestClient(server.httpUrl, server.apiKey);
});

afterAll(async () => {
  await server?.stop();
});

const requestIdOf = async (transactionId: string) => (await getTransaction(server.app.context, { projectId: 1n, transactionId })).requestId;

describe("a transaction's request id", () => {
  it("is the first call's; a retry with another request id is still a replay", async () => {
    const customerId = uid("cust");
    ok(await api.post("/v1/customers/deposit", { customer_id: customerId, amount: 100 }));
    const transactionId = uid("hold");
    const body = { customer_id: customerId, transaction_id: transactionId, amount: 30 };
    const first = ok(await api.post("/v1/billing/freeze", body, { headers: { "x-request-id": "req-first" } }));
    const retry = ok(await api.post("/v1/billing/freeze", body, { headers: { "x-request-id": "req-retry" } }));
    expect(first.is_idempotent_replay).toBe(false);
    expect(retry).toEqual({ ...first, is_idempotent_replay: true });
    expect(await requestIdOf(transactionId)).toBe("req-first");
  });

  it("comes from gRPC metadata, or is the id the server made", async () => {
    const customerId = uid("cust");
    ok(await api.post("/v1/customers/deposit", { customer_id: customerId, amount: 100 }));
    const deduct = (transactionId: string, metadata: Metadata) =>
      new Promise<void>((resolve, reject) => {
        const request = { customerId, transactionId, amount: 5n, creditTypes: [], businessType: 0, description: "", metadata: {} };
        server.client.raw.deduct(request as never, metadata, (error) => (error ? reject(error) : resolve()));
      });
    const named = uid("tx");
    const metadata = new Metadata();
    metadata.set("authorization", `Bearer ${server.apiKey}`);
    metadata.set("x-request-id", "grpc-req-7");
    await deduct(named, metadata);
    expect(await requestIdOf(named)).toBe("grpc-req-7");
    const anonymous = uid("tx");
    const bare = new Metadata();
    bare.set("authorization", `Bearer ${server.apiKey}`);
    await deduct(anonymous, bare);
    expect(await requestIdOf(anonymous)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });
});

describe("GET /v1/customers/{id}/ledger dates", () => {
  it("filters by created_after (inclusive) and created_before (exclusive), as gRPC does", async () => {
    const customerId = uid("cust");
    const t0 = server.clock.now();
    ok(await api.post("/v1/customers/deposit", { customer_id: customerId, amount: 1 }));
    server.clock.advance(3_600_000);
    ok(await api.post("/v1/customers/deposit", { customer_id: customerId, amount: 2 }));
    const amounts = async (query: string) =>
      ok<{ items: Array<{ amount: number }>; total_count: number }>(await api.get(`/v1/customers/${customerId}/ledger?${query}`)).items.map(
        (i) => i.amount,
      );
    const at = (ms: number) => encodeURIComponent(new Date(ms).toISOString());
    expect(await amounts(`created_after=${at(t0 + 3_600_000)}`)).toEqual([2]);
    expect(await amounts(`created_before=${at(t0 + 3_600_000)}`)).toEqual([1]);
    expect(await amounts(`created_after=${at(t0)}&created_before=${at(t0 + 1)}`)).toEqual([1]);
    expect(await amounts("created_after=2020-01-01")).toEqual([2, 1]);
    expectHttpError(await api.get(`/v1/customers/${customerId}/ledger?created_after=yesterday`), "invalid_argument", {
      message: "created_after is not a valid timestamp.",
      details: { field: "created_after" },
    });
  });
});
