import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { rawHttp } from "../support/raw-http.js";
import { startTestServer, type TestServer } from "../support/server.js";

let s: TestServer;
const logLines: string[] = [];
beforeAll(async () => {
  s = await startTestServer({ METRICS_PORT: "0" }, { logDestination: { write: (line: string) => void logLines.push(line) } });
});
afterAll(async () => {
  await s?.stop();
});

const scrape = async () => (await fetch(`http://127.0.0.1:${s.app.metricsPort}/metrics`)).text();

describe("Prometheus metrics", () => {
  it("count calls by method and code, time them, and show the pool", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 10n });
    await s.client.call("deposit", { customerId, amount: 10n });
    await expectError(s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 100n }), "insufficient_balance");
    const text = await scrape();
    expect(text).toContain('billing_grpc_calls_total{method="Deposit",code="ok"} 2');
    expect(text).toContain('billing_grpc_calls_total{method="Deduct",code="insufficient_balance"} 1');
    expect(text).toContain('billing_grpc_call_duration_seconds_count{method="Deposit"} 2');
    expect(text).toMatch(/billing_db_pool_connections\{state="open"\} [1-9]/);
    expect(text).toContain("# TYPE billing_db_transaction_retries_total counter");
    expect((await fetch(`http://127.0.0.1:${s.app.metricsPort}/other`)).status).toBe(404);
  });

  it("show every labelled counter's series at 0 before it first counts, so that an alert rule sees its first count", async () => {
    const text = await scrape();
    for (const line of ["customer", "side_by_side", "gate"]) expect(text).toContain(`billing_overload_refusals_total{line="${line}"} 0`);
    for (const reason of ["deadlock", "lock_wait_timeout", "certification_failure", "connection_lost", "prefetch_raced"]) {
      expect(text).toContain(`billing_db_transaction_retries_total{reason="${reason}"} 0`);
    }
    expect(text).toContain('billing_connections_refused_total{transport="http",reason="address"} 0');
    expect(text).toContain('billing_auto_settlement_lateness_seconds_count{via="in_line"} 0');
  });
});

describe("requests refused before a route runs", () => {
  type Line = { msg?: string; requestId?: string; route?: string; code?: string; status?: number };
  const httpPort = () => Number(new URL(s.httpUrl).port);
  const unknownRefusals = async () => {
    const line = (await scrape())
      .split("\n")
      .find((l) => l.startsWith('billing_http_requests_total{route="unknown",code="invalid_argument"}'));
    return Number(line?.split(" ")[1] ?? 0);
  };

  it.each([
    ["a path that is not UTF-8 (fastify's frameworkErrors)", "GET /v1/customers/%ff HTTP/1.1\r\nHost: x"],
    ["a path parameter over the router's limit (frameworkErrors)", `GET /v1/customers/${"a".repeat(500)} HTTP/1.1\r\nHost: x`],
    ["a control character in a header (Node's parser)", "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0001b"],
  ])("%s: one http call line and one count, as every answer", async (_name, head) => {
    const before = await unknownRefusals();
    const answer = await rawHttp(httpPort(), head);
    expect(answer.status).toBe(400);
    const requestId = answer.headers["x-request-id"];
    await expect.poll(unknownRefusals).toBe(before + 1);
    const lines = logLines.map((l) => JSON.parse(l) as Line).filter((l) => l.msg === "http call" && l.requestId === requestId);
    expect(lines.map(({ route, code, status }) => ({ route, code, status }))).toEqual([
      { route: "unknown", code: "invalid_argument", status: 400 },
    ]);
  });
});
