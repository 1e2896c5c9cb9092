import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DepositRequest, GetCustomerRequest, GetCustomerResponse } from "../../gen/velobase/billing/v1/billing.js";
import { ERROR_CATALOG, type ErrorCode } from "../../src/errors/catalog.js";
import { JSON_DEPTH_MAX } from "../../src/domain/limits.js";
import { expectError, TestClient } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { expectHttpError, type HttpTestClient, httpClientFor, ok } from "../support/http.js";
import { RawClient } from "../support/raw-client.js";
import { rawHttp, type RawHttpResponse } from "../support/raw-http.js";
import { startTestServer, type TestServer } from "../support/server.js";

// The HTTP edge as a probe found it: every answer inside the contract.
const execFileAsync = promisify(execFile);
let s: TestServer;
let http: HttpTestClient;
let port: number;

beforeAll(async () => {
  s = await startTestServer();
  http = await httpClientFor(s);
  port = Number(new URL(s.httpUrl).port);
});
afterAll(async () => s?.stop());

/**
 * The exact documented error body with its X-Request-Id, on an answer read off the socket: status
 * and type from the catalogue, the message (the catalogue's unless given), exactly these details.
 */
function expectRawError(response: RawHttpResponse, code: ErrorCode, details: Record<string, unknown>, message?: string): void {
  const spec = ERROR_CATALOG[code];
  const requestId = response.headers["x-request-id"];
  expect(requestId).toMatch(/^[A-Za-z0-9_.:@-]{1,128}$/);
  expect({ status: response.status, body: response.body }).toEqual({
    status: spec.httpStatus,
    body: {
      error: {
        code,
        type: spec.type,
        message: message ?? spec.message,
        details,
        retryable: spec.httpStatus >= 500 || spec.httpStatus === 429,
        request_id: requestId,
      },
    },
  });
}

const auth = () => `Authorization: Bearer ${s.apiKey}`;
const post = (path: string, body: Buffer, extra = "") =>
  rawHttp(port, `POST ${path} HTTP/1.1\r\nHost: x\r\n${auth()}\r\nContent-Type: application/json${extra}`, body);

describe("ids of every accepted length are readable", () => {
  const longId = (length: number) => `id:${"a@b.".repeat(40)}`.slice(0, length);

  it.each([100, 101, 128])("a customer id of %i characters (':' and '@' percent-encoded) reads back on every GET route", async (length) => {
    const customer = `${longId(length - 6)}${uid("").slice(-6)}`.slice(-length);
    expect(customer).toHaveLength(length);
    ok(await http.post("/v1/customers/deposit", { customer_id: customer, amount: 5 }));
    const path = encodeURIComponent(customer);
    expect(ok(await http.get(`/v1/customers/${path}`))).toMatchObject({ id: customer, balance: { available: 5 } });
    expect(ok(await http.get(`/v1/customers/${path}/ledger`))).toMatchObject({ total_count: 1 });
    expect(ok(await http.get(`/v1/slot/customer/${path}`))).toEqual({ pools: [] });
    expect(ok(await http.get(`/v1/entitlement/${path}`))).toEqual({ items: [] });
    expect(ok(await http.get(`/v1/entitlement/${path}/${"f".repeat(100)}x`))).toEqual({ entitlement: null });
  });

  it("a 129-character id is refused as the invalid id it is; a path far beyond is invalid_argument, not 414", async () => {
    expectHttpError(await http.get(`/v1/customers/${"a".repeat(129)}`), "invalid_argument", {
      message: `customer_id must be 1-128 characters of [A-Za-z0-9_.:@-].`,
      details: { field: "customer_id" },
    });
    expectHttpError(await http.get(`/v1/customers/${"a".repeat(400)}`), "invalid_argument", {
      message: "A path parameter is too long: ids are 1-128 characters.",
      details: { field: "path" },
    });
  });
});

describe("metadata depth", () => {
  const nested = (levels: number): unknown => {
    let value: unknown = "leaf";
    for (let i = 0; i < levels; i += 1) value = [value];
    return value;
  };

  it(`takes a body nested ${JSON_DEPTH_MAX} levels deep, refuses one level more as invalid_argument naming metadata`, async () => {
    // The body is level 1, metadata level 2, its value level 3.
    const deepest = { customer_id: uid("deep"), amount: 1, metadata: { a: nested(JSON_DEPTH_MAX - 2) } };
    ok(await http.post("/v1/customers/deposit", deepest));
    const tooDeep = { customer_id: uid("deep"), amount: 1, metadata: { a: nested(JSON_DEPTH_MAX - 1) } };
    expectHttpError(await http.post("/v1/customers/deposit", tooDeep), "invalid_argument", {
      message: `metadata is nested deeper than ${JSON_DEPTH_MAX} levels.`,
      details: { field: "metadata" },
    });
  });

  it("refuses a body that is an array nested 10,000 deep naming the body, not an index", async () => {
    const raw = `${"[".repeat(10_000)}${"]".repeat(10_000)}`;
    expectHttpError(
      await http.request("POST", "/v1/customers/deposit", { raw, headers: { "content-type": "application/json" } }),
      "invalid_argument",
      { message: `body is nested deeper than ${JSON_DEPTH_MAX} levels.`, details: { field: "body" } },
    );
  });

  it("refuses metadata nested 10,000 deep the same way (never a 500)", async () => {
    const raw = `{"customer_id":"${uid("deep")}","amount":1,"metadata":{"a":${"[".repeat(10_000)}${"]".repeat(10_000)}}}`;
    expectHttpError(
      await http.request("POST", "/v1/customers/deposit", { raw, headers: { "content-type": "application/json" } }),
      "invalid_argument",
      {
        message: `metadata is nested deeper than ${JSON_DEPTH_MAX} levels.`,
        details: { field: "metadata" },
      },
    );
  });
});

describe("invalid Unicode is refused, as gRPC refuses it", () => {
  const body = (customer: string, description: string) => `{"customer_id":"${customer}","amount":1,"description":${description}}`;

  it("an escaped lone surrogate (\\ud800) names its field", async () => {
    const customer = uid("utf");
    expectRawError(
      await post("/v1/customers/deposit", Buffer.from(body(customer, '"a\\ud800b"'))),
      "invalid_argument",
      { field: "description" },
      "description is not valid Unicode (it holds a lone surrogate).",
    );
    expectRawError(
      await post(
        "/v1/billing/deduct",
        Buffer.from(`{"customer_id":"${customer}","transaction_id":"t","amount":1,"metadata":{"k":"\\udc00"}}`),
      ),
      "invalid_argument",
      { field: "metadata" },
      "metadata is not valid Unicode (it holds a lone surrogate).",
    );
    expectHttpError(await http.get(`/v1/customers/${customer}`), "customer_not_found", { details: { customer_id: customer } });
  });

  it.each([
    ["a raw 0xFF byte", Buffer.from([0xff])],
    ["an overlong sequence (C0 AF for '/')", Buffer.from([0xc0, 0xaf])],
    ["an encoded surrogate (ED A0 80)", Buffer.from([0xed, 0xa0, 0x80])],
  ])("%s in a field's text → that field is not valid UTF-8; in a key → the body is not", async (_name, bytes) => {
    const customer = uid("utf");
    const inValue = Buffer.concat([Buffer.from(`{"customer_id":"${customer}","amount":1,"description":"a`), bytes, Buffer.from('b"}')]);
    expectRawError(
      await post("/v1/customers/deposit", inValue),
      "invalid_argument",
      { field: "description" },
      "description is not valid UTF-8.",
    );
    const inMetadata = Buffer.concat([
      Buffer.from(`{"customer_id":"${customer}","amount":1,"metadata":{"k":["x","`),
      bytes,
      Buffer.from('"]}}'),
    ]);
    expectRawError(
      await post("/v1/customers/deposit", inMetadata),
      "invalid_argument",
      { field: "metadata" },
      "metadata is not valid UTF-8.",
    );
    const inKey = Buffer.concat([Buffer.from(`{"customer_id":"${customer}","amount":1,"a`), bytes, Buffer.from('":1}')]);
    expectRawError(
      await post("/v1/customers/deposit", inKey),
      "invalid_argument",
      { field: "body" },
      "The request body is not valid UTF-8.",
    );
    expectHttpError(await http.get(`/v1/customers/${customer}`), "customer_not_found", { details: { customer_id: customer } });
  });

  it("gRPC refuses the same bytes in a string with the same code", async () => {
    const raw = new RawClient(s.app.port, s.apiKey);
    try {
      const valid = Buffer.from(
        DepositRequest.encode(DepositRequest.fromPartial({ customerId: uid("utf"), amount: 1n, description: "aXb" })).finish(),
      );
      const bad = Buffer.from(valid);
      bad[bad.indexOf("aXb") + 1] = 0xff;
      await expectError(raw.call("Deposit", bad), "invalid_argument", "description is not valid UTF-8.");
    } finally {
      raw.close();
    }
  });
});

describe("metadata keys named __proto__ and constructor", () => {
  const hostile = '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"plan":"pro"}';

  it("are stored and returned as sent over HTTP, without touching any prototype", async () => {
    const customer = uid("proto");
    const raw = `{"customer_id":"${customer}","amount":5,"metadata":${hostile},"__proto__":{"amount":1}}`;
    expect(ok(await http.request("POST", "/v1/customers/deposit", { raw, headers: { "content-type": "application/json" } }))).toMatchObject(
      {
        added_amount: 5,
      },
    );
    const got = ok<{ metadata: Record<string, unknown> }>(await http.get(`/v1/customers/${customer}`));
    expect(Object.keys(got.metadata)).toEqual(["__proto__", "constructor", "plan"]);
    expect(JSON.stringify(got.metadata)).toBe(hostile);
    expect(Object.getPrototypeOf(got.metadata)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.hasOwn(Object.prototype, "polluted")).toBe(false);

    const deduct = `{"customer_id":"${customer}","transaction_id":"${uid("tx")}","amount":1,"metadata":${hostile}}`;
    ok(await http.request("POST", "/v1/billing/deduct", { raw: deduct, headers: { "content-type": "application/json" } }));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("round-trip across transports: written over gRPC, read over HTTP and gRPC", async () => {
    const customer = uid("proto");
    const raw = new RawClient(s.app.port, s.apiKey);
    try {
      const metadata = Object.fromEntries([
        ["__proto__", "p"],
        ["constructor", "c"],
        ["plan", "pro"],
      ]);
      await raw.call(
        "Deposit",
        Buffer.from(DepositRequest.encode({ ...DepositRequest.fromPartial({ customerId: customer, amount: 3n }), metadata }).finish()),
      );
      const got = ok<{ metadata: Record<string, unknown> }>(await http.get(`/v1/customers/${customer}`));
      expect(JSON.stringify(got.metadata)).toBe('{"__proto__":"p","constructor":"c","plan":"pro"}');
      const overGrpc = await raw.call(
        "GetCustomer",
        Buffer.from(GetCustomerRequest.encode(GetCustomerRequest.fromPartial({ customerId: customer })).finish()),
      );
      expect(GetCustomerResponse.decode(overGrpc).metadata).toMatchObject({ constructor: "c", plan: "pro" });
      expect(overGrpc.includes(Buffer.from("__proto__"))).toBe(true);
      expect(Object.hasOwn(Object.prototype, "polluted")).toBe(false);
    } finally {
      raw.close();
    }
  });
});

describe("errors raised before a route runs have the API's body and X-Request-Id", () => {
  const notHttp = "The request is not valid HTTP/1.1 (a header holds a forbidden character, or the request line is malformed).";
  it.each([
    ["a NUL in a header", "GET /v1/customers/x HTTP/1.1\r\nHost: x\r\nX-Note: a\u0000b", notHttp],
    ["a CR in a header", "GET /v1/customers/x HTTP/1.1\r\nHost: x\r\nX-Note: a\rb", notHttp],
    [
      "headers over the size limit (400, not Node's 431)",
      `GET /v1/customers/x HTTP/1.1\r\nHost: x\r\nX-Note: ${"a".repeat(20_000)}`,
      "The request headers are too large.",
    ],
    ["a malformed request line", "GET /openapi.json HTTP/1.1 extra\r\nHost: x", notHttp],
  ])("%s", async (_name, head, message) => {
    expectRawError(await rawHttp(port, head), "invalid_argument", { field: "request" }, message);
  });

  it("%ff in the path", async () => {
    expectRawError(
      await rawHttp(port, `GET /v1/customers/%ff HTTP/1.1\r\nHost: x\r\n${auth()}`),
      "invalid_argument",
      { field: "path" },
      "The request path is not valid percent-encoded UTF-8.",
    );
  });

  it("a path parameter over the router's limit (was 414)", async () => {
    expectRawError(
      await rawHttp(port, `GET /v1/customers/${"a".repeat(500)}/ledger HTTP/1.1\r\nHost: x\r\n${auth()}`),
      "invalid_argument",
      { field: "path" },
      "A path parameter is too long: ids are 1-128 characters.",
    );
  });

  it("a body over the limit says it is too large", async () => {
    const big = Buffer.from(`{"customer_id":"x","amount":1,"description":"${"a".repeat(1_100_000)}"}`);
    expectRawError(
      await post("/v1/customers/deposit", big),
      "invalid_argument",
      { field: "body", limit: 1_048_576 },
      "The request body is too large: at most 1048576 bytes.",
    );
  });

  it("unknown routes and /openapi.json keep the same body and header", async () => {
    expectRawError(await rawHttp(port, "GET /v1/nothing-here HTTP/1.1\r\nHost: x"), "not_found", {});
    const doc = await rawHttp(port, "GET /openapi.json HTTP/1.1\r\nHost: x");
    expect(doc.status).toBe(200);
    expect(doc.headers["x-request-id"]).toMatch(/\S/);
  });
});

describe("more than one API key", () => {
  const get = (headers: string) => rawHttp(port, `GET /v1/customers/nobody HTTP/1.1\r\nHost: x\r\n${headers}`);

  it("over HTTP: two Authorization headers, or Authorization and x-api-key naming different keys → invalid_api_key", async () => {
    const other = (await s.createKey()).key;
    const message = "The request presents more than one API key.";
    expectRawError(await get(`Authorization: Bearer ${s.apiKey}\r\nAuthorization: Bearer ${other}`), "invalid_api_key", {}, message);
    expectRawError(await get(`Authorization: Bearer ${s.apiKey}\r\nAuthorization: Bearer ${s.apiKey}`), "invalid_api_key", {}, message);
    expectRawError(await get(`Authorization: Bearer ${s.apiKey}\r\nx-api-key: ${other}`), "invalid_api_key", {}, message);
    expectRawError(await get(`x-api-key: ${s.apiKey}\r\nX-Api-Key: ${other}`), "invalid_api_key", {}, message);
    // The same key both ways, or with whitespace around it, is one key.
    expectRawError(await get(`Authorization: Bearer ${s.apiKey}  \r\nx-api-key: ${s.apiKey}`), "customer_not_found", {
      customer_id: "nobody",
    });
  });

  it("over gRPC: two authorization headers (Node's HTTP/2 keeps the first; curl sends both) → invalid_api_key", async () => {
    const other = (await s.createKey()).key;
    const message = Buffer.from(GetCustomerRequest.encode(GetCustomerRequest.fromPartial({ customerId: "nobody" })).finish());
    const frame = join(mkdtempSync(join(tmpdir(), "grpc-frame-")), "request");
    writeFileSync(frame, Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]));
    const { stdout } = await execFileAsync("curl", [
      ...["-s", "--http2-prior-knowledge", "-o", "/dev/null", "-D", "-", "--data-binary", `@${frame}`],
      ...["-H", "content-type: application/grpc", "-H", "te: trailers"],
      ...["-H", `authorization: Bearer ${s.apiKey}`, "-H", `authorization: Bearer ${other}`],
      `http://127.0.0.1:${s.app.port}/velobase.billing.v1.BillingService/GetCustomer`,
    ]);
    expect(stdout).toMatch(/^grpc-status: 16\r?$/m);
    expect(stdout).toMatch(/^grpc-message: The%20request%20presents%20more%20than%20one%20API%20key\.\r?$/m);
  });

  it("over gRPC: the same refusals, and an authorization value with spaces around it is accepted", async () => {
    const other = (await s.createKey()).key;
    const client = new TestClient(s.app.port, null);
    try {
      const call = (pairs: Array<[string, string]>) => {
        const metadata = new Metadata();
        for (const [key, value] of pairs) metadata.add(key, value);
        return client.call("getCustomer", { customerId: "nobody" }, metadata);
      };
      const message = "The request presents more than one API key.";
      await expectError(
        call([
          ["authorization", `Bearer ${s.apiKey}`],
          ["x-api-key", other],
        ]),
        "invalid_api_key",
        message,
      );
      await expectError(
        call([
          ["x-api-key", s.apiKey],
          ["x-api-key", other],
        ]),
        "invalid_api_key",
        message,
      );
      // Whitespace inside the value is trimmed like over HTTP. Around it, HTTP/2 forbids it (RFC 9113
      // §8.2.1) and Node's HTTP/2 layer drops such a header before any code sees it: no key arrives.
      await expectError(call([["authorization", `bearer    ${s.apiKey}`]]), "customer_not_found");
      await expectError(call([["authorization", `Bearer ${s.apiKey}   `]]), "missing_api_key");
      await expectError(
        call([
          ["authorization", `Bearer ${s.apiKey}`],
          ["x-api-key", s.apiKey],
        ]),
        "customer_not_found",
      );
    } finally {
      client.close();
    }
  });
});
