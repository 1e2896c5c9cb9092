import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentials } from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../../gen/grpc/health/v1/health.js";
import type { App } from "../../src/app.js";
import { TestClient, expectError } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { HttpTestClient, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { holdCustomer, lockingReadWaits, waitFor } from "../support/waiting.js";

// What clients see while an instance stops: during the drain it still serves, its health says
// NOT_SERVING and HTTP answers close their connections; a call the grace runs out on is answered
// service_unavailable (retryable, with the same key), never cut without an answer.
let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

const instance = (env: Record<string, string>): Promise<App> => s.startAnotherInstance(env);

/** The gRPC health status of the whole server, as a balancer's check reads it. */
function checkHealth(port: number): Promise<HealthCheckResponse_ServingStatus> {
  const health = new HealthClient(`127.0.0.1:${port}`, credentials.createInsecure());
  return new Promise<HealthCheckResponse_ServingStatus>((resolve, reject) =>
    health.check({ service: "" }, (error, response) => (error ? reject(error) : resolve(response.status))),
  ).finally(() => health.close());
}

const CUT_MESSAGE = "The server shut down before this call finished; it may have committed: send it again with the same idempotency key.";

describe("a shutdown's answers", () => {
  it("drains: NOT_SERVING and 503 health, calls still served, each HTTP answer closing its connection", async () => {
    const other = await instance({ SHUTDOWN_DRAIN_MS: "1500" });
    const http = new HttpTestClient(other.httpUrl, s.apiKey);
    const customerId = uid("drain");
    const before = ok(await http.post("/v1/customers/deposit", { customer_id: customerId, amount: 5 }));
    expect(before).toMatchObject({ customer_id: customerId });
    const stopped = other.stop();
    const health = await http.get("/v1/health", { key: null });
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({
      error: {
        code: "service_unavailable",
        message: "This instance is shutting down: send calls to another one.",
        details: { reason: "stopping" },
      },
    });
    expect(await checkHealth(other.port)).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    const during = await http.post("/v1/customers/deposit", { customer_id: customerId, amount: 7 });
    expect([during.status, during.headers.get("connection")]).toEqual([200, "close"]);
    const client = new TestClient(other.port, s.apiKey);
    expect((await client.call("getCustomer", { customerId })).balance?.total).toBe(12n);
    client.close();
    await stopped;
  });

  it("answers a gRPC call the grace runs out on service_unavailable, and its retry with the same key applies it once", async () => {
    const other = await instance({ SHUTDOWN_GRACE_MS: "300" });
    const customerId = uid("cut");
    await s.client.call("deposit", { customerId, amount: 100n });
    const holder = await holdCustomer(s.app.database.pool, customerId);
    const client = new TestClient(other.port, s.apiKey);
    try {
      const deduct = client.call("deduct", { customerId, transactionId: `${customerId}-d`, amount: 30n });
      await waitFor(() => lockingReadWaits(holder), "the call to wait on the customer's row");
      const stopped = other.stop();
      await expectError(deduct, "service_unavailable", CUT_MESSAGE);
      await holder.query("COMMIT");
      await stopped;
    } finally {
      holder.release();
      client.close();
    }
    const retried = await s.client.call("deduct", { customerId, transactionId: `${customerId}-d`, amount: 30n });
    expect(retried.deductedAmount).toBe(30n);
    expect((await s.client.call("getCustomer", { customerId })).balance?.used).toBe(30n);
  });

  it("answers an HTTP request the grace runs out on with the catalogue's 503, Retry-After and its request id", async () => {
    const other = await instance({ SHUTDOWN_GRACE_MS: "300" });
    const http = new HttpTestClient(other.httpUrl, s.apiKey);
    const customerId = uid("cuth");
    await s.client.call("deposit", { customerId, amount: 100n });
    const holder = await holdCustomer(s.app.database.pool, customerId);
    try {
      const deduct = http.post(
        "/v1/billing/deduct",
        { customer_id: customerId, amount: 30, transaction_id: `${customerId}-d` },
        { headers: { "x-request-id": "cut-1" } },
      );
      await waitFor(() => lockingReadWaits(holder), "the call to wait on the customer's row");
      const stopped = other.stop();
      const answer = await deduct;
      expect({ status: answer.status, retryAfter: answer.headers.get("retry-after"), body: answer.body }).toEqual({
        status: 503,
        retryAfter: "1",
        body: {
          error: {
            code: "service_unavailable",
            type: "server_error",
            message: CUT_MESSAGE,
            retryable: true,
            details: {},
            request_id: "cut-1",
          },
        },
      });
      await holder.query("COMMIT");
      await stopped;
    } finally {
      holder.release();
    }
  });

  it("refuses a request that reaches the closing server, console paths too, with the catalogue's 503 (not a 500)", async () => {
    const other = await instance({ SHUTDOWN_GRACE_MS: "3000" });
    // A request begun before the listener closes and finished after: its connection stays open.
    const socket = connect(other.httpPort, "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    const answer = readAll(socket);
    socket.write("GET /console/sign-in HTTP/1.1\r\n");
    await sleep(50);
    const stopped = other.stop();
    await sleep(50);
    socket.write("Host: localhost\r\nX-Request-Id: late-1\r\n\r\n");
    const text = await answer;
    expect(text.split("\r\n")[0]).toBe("HTTP/1.1 503 Service Unavailable");
    expect(text).toContain('"code":"service_unavailable"');
    expect(text).toContain('"request_id":"late-1"');
    await stopped;
  });

  it("runs no request pipelined behind an answer that closes its connection during the drain", async () => {
    const other = await instance({ SHUTDOWN_DRAIN_MS: "1500" });
    const [first, second] = [uid("pipe"), uid("pipe")];
    const stopped = other.stop();
    const socket = connect(other.httpPort, "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    const answer = readAll(socket);
    const deposit = (customerId: string) => {
      const body = JSON.stringify({ customer_id: customerId, amount: 5 });
      return `POST /v1/customers/deposit HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${s.apiKey}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    };
    socket.write(deposit(first) + deposit(second));
    const text = await answer;
    expect(text.split("\r\n")[0]).toBe("HTTP/1.1 200 OK");
    expect(text.toLowerCase()).toContain("connection: close");
    await stopped;
    expect((await s.client.call("getCustomer", { customerId: first })).balance?.total).toBe(5n);
    await expectError(s.client.call("getCustomer", { customerId: second }), "customer_not_found");
  });
});

/** Everything a socket receives until it closes, as text. */
function readAll(socket: Socket): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => socket.on("close", () => resolve(Buffer.concat(chunks).toString("utf8"))));
}
