import { connect } from "node:http2";
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CATALOG } from "../../src/errors/catalog.js";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { expectError } from "../support/client.js";
import { startTestServer, type TestServer } from "../support/server.js";

// The transport half of the error contract, on the real server and its real handlers. (Each
// catalogue code's wire form is checked in test/unit/status-details.test.ts.)
let real: TestServer;

beforeAll(async () => {
  real = await startTestServer();
});

afterAll(async () => {
  await real?.stop();
});

describe("unexpected exceptions", () => {
  it("arrive as server_error without their text", async () => {
    // Stored metadata that is not JSON: reading the customer throws a parser error, a bug-class
    // failure that no handler classifies.
    const stored = "secret-not-json{";
    await real.client.call("deposit", { customerId: "corrupt", amount: 1n });
    await real.app.database.pool.query("UPDATE customers SET metadata = ? WHERE customer_id = 'corrupt'", [stored]);
    const error = (await real.client.call("getCustomer", { customerId: "corrupt" }).catch((e: unknown) => e)) as ServiceError;
    expect(await expectError(Promise.reject(error), "server_error")).toEqual({});
    expect(error.details).toBe(ERROR_CATALOG.server_error.message);
    expect(decodeStatusDetails(error.metadata).detail?.message).toBe(ERROR_CATALOG.server_error.message);
    const everything = `${error.message}\n${error.details}\n${JSON.stringify(error.metadata.toJSON())}\n${JSON.stringify(decodeStatusDetails(error.metadata))}`;
    for (const leak of ["secret", "not-json", "JSON", "Unexpected token", "position", "SyntaxError"]) {
      expect(everything).not.toContain(leak);
    }
    // The service answers the next call.
    expect((await real.client.call("deposit", { customerId: "after-corrupt", amount: 1n })).addedAmount).toBe(1n);
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
