import { connect } from "node:http2";
import { Metadata, status } from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BillingError } from "../../src/errors/billing-error.js";
import { ERROR_CODES, type ErrorCode } from "../../src/errors/catalog.js";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { billingHandlers } from "../../src/grpc/billing-handlers.js";
import { HealthReporter, startGrpcServer, type GrpcServer } from "../../src/grpc/server.js";
import { guarded } from "../../src/grpc/unary.js";
import { TestClient, expectError } from "../support/client.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { trustNoProxy } from "../../src/tenancy/client-address.js";

// The transport half of the error contract: whatever code an operation raises, a client built
// from gen/ decodes it intact. The real server and wrapper run; only Deposit is replaced by a
// handler that raises the code named in customer_id, which reaches every catalogue entry,
// including the auth and rate-limit codes that no operation raises yet.
let grpc: GrpcServer;
let client: TestClient;
let real: TestServer;

beforeAll(async () => {
  real = await startTestServer();
  const env = {
    log: pino({ level: "silent" }),
    authenticator: real.app.authenticator,
    rateLimiter: real.app.rateLimiter,
    proxyTrust: trustNoProxy,
  };
  const handlers = billingHandlers(real.app.context, env);
  handlers.deposit = guarded(env, "Deposit", "write", async (r: { customerId: string }) => {
    if (r.customerId === "explode") throw new TypeError("secret table velobase.accounts is on fire");
    throw new BillingError(r.customerId as ErrorCode, undefined, { requested: 7n, available: 3n });
  });
  grpc = await startGrpcServer(handlers, new HealthReporter(), "127.0.0.1:0");
  client = new TestClient(grpc.port, real.apiKey);
});

afterAll(async () => {
  client?.close();
  await grpc?.shutdown(1000);
  await real?.stop();
});

describe("every catalogue code reaches a client intact", () => {
  it.each(ERROR_CODES)("%s", async (code) => {
    const metadata = await expectError(client.call("deposit", { customerId: code, amount: 1n }), code);
    expect(metadata).toEqual({ requested: "7", available: "3" });
  });
});

describe("unexpected exceptions", () => {
  it("arrive as server_error without their text", async () => {
    const error = await client.call("deposit", { customerId: "explode", amount: 1n }).catch((e: unknown) => e);
    const { detail } = decodeStatusDetails((error as { metadata: Metadata }).metadata);
    expect(detail?.code).toBe("server_error");
    expect(JSON.stringify(error)).not.toContain("fire");
    expect(String((error as Error).message)).not.toContain("fire");
  });

  it("from corrupt stored data also stay generic", async () => {
    await real.client.call("deposit", { customerId: "corrupt", amount: 1n });
    await real.app.database.pool.query("UPDATE customers SET metadata = 'not json' WHERE customer_id = 'corrupt'");
    await expectError(real.client.call("getCustomer", { customerId: "corrupt" }), "server_error");
  });
});

describe("a request value an error echoes", () => {
  it("is cut short, so that an answer's trailers stay small and the connection serves on", async () => {
    const long = "A".repeat(40_000);
    await expectError(
      real.client.call("deposit", { customerId: "echo", amount: 1n, creditType: long }),
      "invalid_credit_types",
      `credit_type must be 1-64 characters of [a-z0-9_.-], got "${"A".repeat(63)}…".`,
    );
    // The same channel answers the next call (before, the first never ended, nor did any after it).
    expect((await real.client.call("deposit", { customerId: "echo", amount: 1n })).addedAmount).toBe(1n);
    const { TestWatcher } = await import("../support/events.js");
    const watcher = new TestWatcher(real.app.port, real.apiKey, { types: ["x".repeat(60_000)] });
    const facts = await expectError(
      watcher.ended.then((e) => Promise.reject(e)),
      "invalid_argument",
      "types holds an unknown value.",
    );
    watcher.close();
    expect(facts).toEqual({ field: "types", value: `${"x".repeat(2_099)}…` });
  });
});

describe("x-request-id", () => {
  it("is echoed on success and on failure", async () => {
    for (const customerId of ["fresh-customer", ""]) {
      const metadata = new Metadata();
      metadata.set("x-request-id", `req-${customerId || "empty"}`);
      const headers = await new Promise<Metadata>((resolve) => {
        const call = real.client.raw.deposit({ customerId, amount: 1n, metadata: {} } as never, metadata, () => undefined);
        call.on("metadata", resolve);
      });
      expect(headers.get("x-request-id")).toEqual([`req-${customerId || "empty"}`]);
    }
  });

  it("is on the answers grpc-js gives itself: an unknown method, a passed deadline, the health service", async () => {
    const session = connect(`http://127.0.0.1:${real.app.port}`);
    try {
      const headersOf = (path: string, body: Buffer, extra: Record<string, string> = {}) =>
        new Promise<Record<string, unknown>>((resolve, reject) => {
          const stream = session.request({
            ":method": "POST",
            ":path": path,
            "content-type": "application/grpc",
            te: "trailers",
            authorization: `Bearer ${real.apiKey}`,
            ...extra,
          });
          stream.on("response", (headers) => resolve(headers));
          stream.on("error", reject);
          stream.resume();
          stream.end(body);
        });
      const empty = Buffer.from([0, 0, 0, 0, 0]);
      const unknown = await headersOf("/velobase.billing.v1.BillingService/Nope", empty, { "x-request-id": "mine-1" });
      expect([unknown["grpc-status"], unknown["x-request-id"]]).toEqual([String(status.UNIMPLEMENTED), "mine-1"]);
      const late = await headersOf("/velobase.billing.v1.BillingService/GetCustomer", empty, {
        "grpc-timeout": "1n",
        "x-request-id": "mine-2",
      });
      expect(late["x-request-id"]).toBe("mine-2");
      const health = await headersOf("/grpc.health.v1.Health/Check", empty, { "x-request-id": "not sane!" });
      expect(String(health["x-request-id"])).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      session.close();
    }
  });

  it("is generated when the caller sends none", async () => {
    const headers = await new Promise<Metadata>((resolve) => {
      const call = real.client.raw.getCustomer(
        { customerId: "nobody", includeInactive: false, asOf: undefined },
        new Metadata(),
        () => undefined,
      );
      call.on("metadata", resolve);
    });
    expect(String(headers.get("x-request-id")[0])).toMatch(/^[0-9a-f-]{36}$/);
  });
});
