import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueDatabaseUrl } from "../support/database.js";
import { uid } from "../support/fixtures.js";
import { expectHttpError, httpClientFor, HttpTestClient, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { TcpProxy } from "../support/tcp-proxy.js";

// The HTTP server as a transport: its OpenAPI document, keys (scopes, revocation, projects),
// the rate limit (429 with Retry-After), and health during an outage.
let s: TestServer;
let http: HttpTestClient;

beforeAll(async () => {
  s = await startTestServer();
  http = await httpClientFor(s);
});
afterAll(async () => s?.stop());

describe("GET /openapi.json", () => {
  it("is a valid OpenAPI 3.1 document listing every route", async () => {
    const response = await http.get("/openapi.json", { key: null });
    const document = ok<{ openapi: string; paths: Record<string, Record<string, unknown>> }>(response);
    const validator = new Validator();
    const result = await validator.validate(document as unknown as Parameters<Validator["validate"]>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    expect(document.openapi).toBe("3.1.0");
    expect(Object.fromEntries(Object.entries(document.paths).map(([path, methods]) => [path, Object.keys(methods)]))).toEqual({
      "/v1/health": ["get"],
      "/v1/customers/deposit": ["post"],
      "/v1/customers/{customer_id}": ["get"],
      "/v1/customers/{customer_id}/ledger": ["get"],
      "/v1/billing/deduct": ["post"],
      "/v1/billing/freeze": ["post"],
      "/v1/billing/consume": ["post"],
      "/v1/billing/unfreeze": ["post"],
      "/v1/billing/refund": ["post"],
      "/v1/customers/deposit/void": ["post"],
      "/v1/slot/grant": ["post"],
      "/v1/slot/revoke": ["post"],
      "/v1/slot/claim": ["post"],
      "/v1/slot/release": ["post"],
      "/v1/slot/customer/{customer_id}": ["get"],
      "/v1/slot/events/{customer_id}": ["get"],
      "/v1/entitlement/set": ["post"],
      "/v1/entitlement/remove": ["post"],
      "/v1/entitlement/{customer_id}/events": ["get"],
      "/v1/entitlement/{customer_id}/{feature_key}": ["get"],
      "/v1/entitlement/{customer_id}": ["get"],
      "/v1/events": ["get"],
      "/v1/alerts": ["post", "get"],
      "/v1/alerts/{customer_id}": ["delete"],
    });
  });

  it("documents the same schemas that validate requests", async () => {
    const document = ok<{
      paths: Record<
        string,
        Record<
          string,
          { requestBody?: { content: Record<string, { schema: { required: string[]; properties: Record<string, unknown> } }> } }
        >
      >;
    }>(await http.get("/openapi.json", { key: null }));
    const deposit = document.paths["/v1/customers/deposit"]?.post?.requestBody?.content["application/json"]?.schema;
    expect(deposit?.required).toEqual(["customer_id", "amount"]);
    expect(deposit?.properties.amount).toEqual({
      type: "integer",
      minimum: 1,
      maximum: 1e15,
      description: "Credits to add: a positive integer.",
    });
  });

  it("documents every optional body field as nullable, and every required one as not", async () => {
    interface BodySchema {
      required?: string[];
      properties: Record<string, { anyOf?: Array<{ type?: string }>; type?: string }>;
    }
    const document = ok<{ paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: BodySchema }> } }>> }>(
      await http.get("/openapi.json", { key: null }),
    );
    const fields: string[] = [];
    for (const [path, methods] of Object.entries(document.paths)) {
      const schema = methods.post?.requestBody?.content["application/json"]?.schema;
      if (!schema) continue;
      for (const [name, property] of Object.entries(schema.properties)) {
        const nullable = (property.anyOf ?? []).some((branch) => branch.type === "null");
        const required = (schema.required ?? []).includes(name);
        fields.push(`${path} ${name}: ${required ? "required" : "optional"}${nullable ? ", nullable" : ""}`);
      }
    }
    expect(fields.filter((f) => f.endsWith(": optional") || f.endsWith("required, nullable"))).toEqual([]);
    expect(fields).toContain("/v1/customers/deposit expires_at: optional, nullable");
    expect(fields).toContain("/v1/billing/freeze unfreeze_after_seconds: optional, nullable");
    expect(fields).toContain("/v1/slot/claim amount: optional, nullable");
    expect(fields).toContain("/v1/entitlement/set valid_until: optional, nullable");
  });
});

describe("keys over HTTP", () => {
  it("a read key reads customers and ledgers; every write is 403 permission_denied", async () => {
    const customer = uid("cust");
    ok(await http.post("/v1/customers/deposit", { customer_id: customer, amount: 10 }));
    const reader = new HttpTestClient(s.httpUrl, (await s.createKey({ scope: "read" })).key);
    expect(ok(await reader.get(`/v1/customers/${customer}`)).id).toBe(customer);
    expect(ok(await reader.get(`/v1/customers/${customer}/ledger`)).total_count).toBe(1);
    for (const path of [
      "/v1/customers/deposit",
      "/v1/billing/deduct",
      "/v1/billing/freeze",
      "/v1/billing/consume",
      "/v1/billing/unfreeze",
    ]) {
      expectHttpError(await reader.post(path, { customer_id: customer, amount: 1, transaction_id: uid("tx") }), "permission_denied", {
        details: { required_scope: "write" },
      });
    }
  });

  it("a revoked key is 401 api_key_revoked, and another project's key sees nothing of this one", async () => {
    const customer = uid("cust");
    ok(await http.post("/v1/customers/deposit", { customer_id: customer, amount: 10 }));
    const revoked = await s.createKey();
    await s.revokeKey(revoked.prefix);
    expectHttpError(await new HttpTestClient(s.httpUrl, revoked.key).get(`/v1/customers/${customer}`), "api_key_revoked");
    const other = new HttpTestClient(s.httpUrl, (await s.createKey({ project: await s.createProject() })).key);
    expectHttpError(await other.get(`/v1/customers/${customer}`), "customer_not_found", { details: { customer_id: customer } });
  });
});

describe("rate limit", () => {
  it("429 rate_limit_exceeded, retryable, with Retry-After from the bucket's real wait", async () => {
    const project = await s.createProject({ ratePerSecond: 1, burst: 1 });
    const limited = new HttpTestClient(s.httpUrl, (await s.createKey({ project })).key);
    expectHttpError(await limited.get("/v1/customers/nobody"), "customer_not_found", { details: { customer_id: "nobody" } });
    const refused = await limited.get("/v1/customers/nobody");
    expect(refused.status).toBe(429);
    const details = (refused.body as { error: { details: { retry_delay_ms: number } } }).error.details;
    expect(details.retry_delay_ms).toBeGreaterThan(0);
    expect(details.retry_delay_ms).toBeLessThanOrEqual(1000);
    expectHttpError(refused, "rate_limit_exceeded", { details: { rate_per_second: 1, burst: 1, retry_delay_ms: details.retry_delay_ms } });
    expect(refused.headers.get("retry-after")).toBe("1");
  });
});

describe("database outage", () => {
  it("a request whose client left while its key was looked up is not run, and its line says cancelled", async () => {
    // The database held still (a frozen proxy) while the key is looked up (no key cache): the
    // client sends a whole deposit and closes before the look-up answers.
    const proxy = new TcpProxy(3306);
    const port = await proxy.start();
    const db = uniqueDatabaseUrl("vb_http_gone");
    type Line = { msg?: string; route?: string; code?: string; status?: number; clientGone?: boolean };
    const lines: Line[] = [];
    const gone = await startTestServer(
      { DATABASE_URL: db.url.replace("127.0.0.1:3306", `127.0.0.1:${port}`), API_KEY_CACHE_TTL_MS: "0" },
      { logDestination: { write: (line: string) => void lines.push(JSON.parse(line) as Line) } },
    );
    const client = await httpClientFor(gone);
    try {
      const customerId = uid("gone");
      const body = JSON.stringify({ customer_id: customerId, amount: 5 });
      proxy.freeze();
      const socket = connect(Number(new URL(gone.httpUrl).port), "127.0.0.1");
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      socket.end(
        `POST /v1/customers/deposit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${gone.apiKey}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      await sleep(300);
      socket.destroy();
      await sleep(300);
      proxy.thaw();
      const deposits = () => lines.filter((l) => l.msg === "http call" && l.route === "POST /v1/customers/deposit");
      await expect.poll(() => deposits().length, { timeout: 10_000 }).toBe(1);
      expect(deposits().map(({ code, status, clientGone }) => ({ code, status, clientGone }))).toEqual([
        { code: "cancelled", status: 499, clientGone: true },
      ]);
      expectHttpError(await client.get(`/v1/customers/${customerId}`), "customer_not_found", { details: { customer_id: customerId } });
    } finally {
      await gone.stop();
      await proxy.cut();
      await db.drop();
    }
  });

  it("health answers 503 service_unavailable while the database is unreachable, 200 again after", async () => {
    const proxy = new TcpProxy(3306);
    const port = await proxy.start();
    const db = uniqueDatabaseUrl("vb_http_outage");
    const outage = await startTestServer({
      DATABASE_URL: db.url.replace("127.0.0.1:3306", `127.0.0.1:${port}`),
      HEALTH_CHECK_INTERVAL_MS: "100",
    });
    const client = await httpClientFor(outage);
    const health = async () => (await client.get("/v1/health", { key: null })).status;
    try {
      await expect.poll(health, { timeout: 5000 }).toBe(200);
      await proxy.cut();
      await expect.poll(health, { timeout: 5000 }).toBe(503);
      const down = await client.get("/v1/health", { key: null });
      expectHttpError(down, "service_unavailable", {
        message: "This instance cannot reach its database.",
        details: { reason: "database_unreachable" },
      });
      expect(down.headers.get("retry-after")).toBe("1");
      expectHttpError(await client.post("/v1/customers/deposit", { customer_id: "c", amount: 1 }), "service_unavailable");
      await proxy.restore();
      await expect.poll(health, { timeout: 10_000 }).toBe(200);
    } finally {
      await outage.stop();
      await proxy.cut();
      await db.drop();
    }
  });
});
