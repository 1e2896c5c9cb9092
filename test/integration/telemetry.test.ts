import { thrownBy } from "../support/code-of.js";
import type { ChildProcess } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { type Attributes, context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BillingError } from "../../src/errors/billing-error.js";
import { outsideAnyTrace } from "../../src/telemetry/outside-any-trace.js";
import { startTelemetry } from "../../src/telemetry/sdk.js";
import type { TestServer } from "../support/server.js";

// The default service name is asserted: none may come from the environment.
delete process.env.OTEL_SERVICE_NAME;
delete process.env.OTEL_RESOURCE_ATTRIBUTES;
// As src/telemetry/register.ts does under --import: the SDK starts before the app's modules load
// (they are imported below, after it), here with the SDK's in-memory exporter.
const exporter = new InMemorySpanExporter();
const processor = new SimpleSpanProcessor(exporter);
const sdk = startTelemetry({ spanProcessors: [processor] });
const { startTestServer } = await import("../support/server.js");
const { uid } = await import("../support/fixtures.js");
const { TestWatcher } = await import("../support/events.js");
const { uniqueDatabaseUrl } = await import("../support/database.js");
const { collect, spawnMain, waitForOutput } = await import("../support/spawn.js");
const { waitFor } = await import("../support/waiting.js");

const lines: Array<Record<string, unknown>> = [];
const logDestination = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString().split("\n")) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  },
});

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ LOG_LEVEL: "debug" }, { logDestination });
});
afterAll(async () => {
  await s?.stop();
  await sdk.shutdown();
});

const childrenOf = (parent: ReadableSpan, spans: readonly ReadableSpan[]) =>
  spans.filter((span) => span.parentSpanContext?.spanId === parent.spanContext().spanId);

describe("traces", () => {
  it("a gRPC call is one server span with a child span per database round trip", async () => {
    exporter.reset();
    const customerId = uid("traced");
    await s.client.call("deposit", { customerId, amount: 5n });
    const spans = exporter.getFinishedSpans();
    const server = spans.find((span) => span.name === "grpc.velobase.billing.v1.BillingService/Deposit" && span.kind === 1);
    expect(server?.resource.attributes["service.name"]).toBe("velobase-billing");
    const database = childrenOf(server as ReadableSpan, spans);
    expect(database.length).toBeGreaterThan(0);
    for (const span of database) expect(span.attributes["db.system"] ?? span.attributes["db.system.name"]).toBe("mysql");
    // Statements without their values: the customer id never appears in a span.
    expect(JSON.stringify(spans.map((span) => span.attributes))).not.toContain(customerId);
  });

  it("an HTTP route is one span named after its route, database round trips below it, and the log lines carry its trace id", async () => {
    exporter.reset();
    lines.length = 0;
    const customerId = uid("traced");
    const response = await fetch(`${s.httpUrl}/v1/customers/deposit`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ customer_id: customerId, amount: 5 }),
    });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    const spans = exporter.getFinishedSpans();
    const route = spans.find((span) => span.attributes["http.route"] === "/v1/customers/deposit" && span.kind === SpanKind.SERVER);
    expect(route?.name).toBe("POST /v1/customers/deposit");
    const traceId = route?.spanContext().traceId;
    const inTrace = spans.filter((span) => span.spanContext().traceId === traceId);
    expect(inTrace.some((span) => (span.attributes["db.system"] ?? span.attributes["db.system.name"]) === "mysql")).toBe(true);
    const logged = lines.filter((line) => line.trace_id !== undefined);
    expect(logged.length).toBeGreaterThan(0);
    expect(new Set(logged.map((line) => line.trace_id))).toEqual(new Set([traceId]));
  });
});

const tracer = trace.getTracer("telemetry-test");
const serverSpanOf = (spans: readonly ReadableSpan[], name: string) =>
  spans.find((span) => span.name === name && span.kind === SpanKind.SERVER);
const inTraceOf = (span: ReadableSpan | undefined, spans: readonly ReadableSpan[]) =>
  spans.filter((other) => other.spanContext().traceId === span?.spanContext().traceId);
/** What a span tells a trace backend, as text. */
const shown = (spans: readonly ReadableSpan[]) =>
  JSON.stringify(spans.map((span) => ({ name: span.name, attributes: span.attributes, events: span.events, status: span.status })));

describe("what spans leave out", () => {
  it("an HTTP span names the method and route template, never the path or query it was called with", async () => {
    const customerId = uid("private");
    await s.client.call("deposit", { customerId, amount: 5n });
    exporter.reset();
    const headers = { authorization: `Bearer ${s.apiKey}` };
    const ledger = await fetch(`${s.httpUrl}/v1/customers/${customerId}/ledger?limit=5`, { headers });
    expect(ledger.status).toBe(200);
    await ledger.arrayBuffer();
    const unknown = await fetch(`${s.httpUrl}/v1/nowhere/${customerId}?email=someone%40example.com`, { headers });
    expect(unknown.status).toBe(404);
    await unknown.arrayBuffer();
    const spans = exporter.getFinishedSpans();
    const routed = serverSpanOf(spans, "GET /v1/customers/:customer_id/ledger");
    expect(routed?.attributes).toEqual({
      "fastify.root": "@fastify/otel",
      "http.request.method": "GET",
      "http.route": "/v1/customers/:customer_id/ledger",
      "http.response.status_code": 200,
    });
    // No route matched: the method alone, as OTel names such a span.
    const unrouted = serverSpanOf(spans, "GET");
    expect(unrouted?.attributes).toEqual({
      "fastify.root": "@fastify/otel",
      "http.request.method": "GET",
      "http.response.status_code": 404,
    });
    expect(shown(spans)).not.toContain(customerId);
    expect(shown(spans)).not.toContain("limit=5");
    expect(shown(spans)).not.toContain("someone");
  });
});

describe("span status", () => {
  it("an HTTP refusal (4xx) leaves every span of its trace UNSET and without an exception", async () => {
    const customerId = uid("refused");
    await s.client.call("deposit", { customerId, amount: 5n });
    const refusals = [
      { key: s.apiKey, path: "/v1/billing/deduct", status: 400 },
      { key: "vb_test_not_a_key", path: "/v1/billing/deduct", status: 401 },
    ];
    for (const refusal of refusals) {
      exporter.reset();
      const response = await fetch(`${s.httpUrl}${refusal.path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${refusal.key}`, "content-type": "application/json" },
        body: JSON.stringify({ customer_id: customerId, transaction_id: uid("t"), amount: 500 }),
      });
      expect(response.status).toBe(refusal.status);
      await response.arrayBuffer();
      const spans = exporter.getFinishedSpans();
      const server = serverSpanOf(spans, "POST /v1/billing/deduct");
      expect(server?.attributes["http.response.status_code"]).toBe(refusal.status);
      const inTrace = inTraceOf(server, spans);
      expect(inTrace.length).toBeGreaterThan(2);
      expect(new Set(inTrace.map((span) => span.status.code))).toEqual(new Set([SpanStatusCode.UNSET]));
      expect(inTrace.flatMap((span) => span.events.map((event) => event.name))).toEqual([]);
    }
  });

  it("a gRPC refusal leaves the server span UNSET and keeps its status code", async () => {
    const customerId = uid("refused");
    await s.client.call("deposit", { customerId, amount: 5n });
    exporter.reset();
    await expect(s.client.call("deduct", { customerId, transactionId: uid("t"), amount: 500n })).rejects.toThrow(/insufficient/);
    const server = serverSpanOf(exporter.getFinishedSpans(), "grpc.velobase.billing.v1.BillingService/Deduct");
    expect(server?.status).toEqual({ code: SpanStatusCode.UNSET });
    expect(server?.attributes["rpc.grpc.status_code"]).toBe(9); // FAILED_PRECONDITION
  });

  const exported = async (kind: SpanKind, attributes: Attributes, thrown: Error): Promise<ReadableSpan | undefined> => {
    exporter.reset();
    const span = tracer.startSpan("outcome", { kind, attributes });
    span.recordException(thrown);
    span.setStatus({ code: SpanStatusCode.ERROR, message: thrown.message });
    span.end();
    // Exported once the resource's detected attributes have settled.
    await processor.forceFlush();
    return exporter.getFinishedSpans()[0];
  };
  const cases: Array<[string, "UNSET" | "ERROR", SpanKind, Attributes, Error]> = [
    ["HTTP 404", "UNSET", SpanKind.SERVER, { "http.response.status_code": 404 }, new Error("x")],
    ["HTTP 499", "UNSET", SpanKind.SERVER, { "http.response.status_code": 499 }, new Error("x")],
    ["HTTP 500", "ERROR", SpanKind.SERVER, { "http.response.status_code": 500 }, new Error("x")],
    ["HTTP 503", "ERROR", SpanKind.SERVER, { "http.response.status_code": 503 }, new Error("x")],
    ["gRPC CANCELLED", "UNSET", SpanKind.SERVER, { "rpc.grpc.status_code": 1 }, new Error("x")],
    ["gRPC INVALID_ARGUMENT", "UNSET", SpanKind.SERVER, { "rpc.grpc.status_code": 3 }, new Error("x")],
    ["gRPC UNAUTHENTICATED", "UNSET", SpanKind.SERVER, { "rpc.grpc.status_code": 16 }, new Error("x")],
    ["gRPC UNKNOWN", "ERROR", SpanKind.SERVER, { "rpc.grpc.status_code": 2 }, new Error("x")],
    ["gRPC DEADLINE_EXCEEDED", "ERROR", SpanKind.SERVER, { "rpc.grpc.status_code": 4 }, new Error("x")],
    ["gRPC INTERNAL", "ERROR", SpanKind.SERVER, { "rpc.grpc.status_code": 13 }, new Error("x")],
    ["gRPC UNAVAILABLE", "ERROR", SpanKind.SERVER, { "rpc.grpc.status_code": 14 }, new Error("x")],
    ["a handler's catalogue refusal", "UNSET", SpanKind.INTERNAL, {}, new BillingError("insufficient_balance")],
    ["a handler's server_error", "ERROR", SpanKind.INTERNAL, {}, new BillingError("server_error")],
    ["a handler's service_unavailable", "ERROR", SpanKind.INTERNAL, {}, new BillingError("service_unavailable")],
    ["a handler's uncatalogued error", "ERROR", SpanKind.INTERNAL, {}, new TypeError("x")],
    ["a client span's refusal", "ERROR", SpanKind.CLIENT, { "rpc.grpc.status_code": 9 }, new Error("x")],
  ];
  it.each(cases)("%s marked ERROR is exported %s, its exception event kept only then", async (_name, status, kind, attributes, thrown) => {
    const span = await exported(kind, attributes, thrown);
    expect(span?.status.code).toBe(SpanStatusCode[status]);
    expect(span?.events.map((event) => event.name)).toEqual(status === "ERROR" ? ["exception"] : []);
  });

  it("an error's message leaves without the values it quotes, in the status and the exception event", async () => {
    // As mysql2 words a duplicate key: the offending value is quoted in the message.
    const span = await exported(SpanKind.CLIENT, {}, new Error("Duplicate entry '7-idem-SECRET42' for key 'outcomes_uq'"));
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: "Duplicate entry '?' for key '?'" });
    expect(span?.events[0]?.attributes?.["exception.message"]).toBe("Duplicate entry '?' for key '?'");
    expect(String(span?.events[0]?.attributes?.["exception.stacktrace"]).split("\n")[0]).toBe("Error: Duplicate entry '?' for key '?'");
    expect(JSON.stringify(span?.events)).not.toContain("SECRET42");
  });

  it("a runtime conversion error's message, which names the value unquoted, leaves withheld", async () => {
    const span = await exported(
      SpanKind.CLIENT,
      {},
      thrownBy(() => BigInt("card-4111")),
    );
    const withheld = "(message withheld: it may quote a value)";
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: withheld });
    expect(span?.events[0]?.attributes?.["exception.message"]).toBe(withheld);
    expect(String(span?.events[0]?.attributes?.["exception.stacktrace"]).split("\n")[0]).toBe(`SyntaxError: ${withheld}`);
    expect(JSON.stringify(span)).not.toContain("4111");
  });

  it("a drizzle error leaves as `Failed query`, without its statement or its params (unquoted, on their own line)", async () => {
    const span = await exported(
      SpanKind.INTERNAL,
      {},
      new Error("Failed query: SELECT * FROM customers WHERE email = ?\nparams: alice@example.com,42"),
    );
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: "Failed query" });
    expect(span?.events[0]?.attributes?.["exception.message"]).toBe("Failed query");
    const stack = String(span?.events[0]?.attributes?.["exception.stacktrace"]).split("\n");
    expect(stack[0]).toBe("Error: Failed query");
    expect(stack[1]).toMatch(/^\s+at /);
    expect(JSON.stringify(span)).not.toContain("alice");
  });
});

describe("database spans", () => {
  it("an idle server exports no span: its background queries belong to no call", async () => {
    exporter.reset();
    // The event stamper polls every 20 ms, the health check every 200 ms.
    await sleep(500);
    expect(exporter.getFinishedSpans().map((span) => span.name)).toEqual([]);
  });

  it("a query makes a span only below a live span", async () => {
    exporter.reset();
    await s.app.database.probe();
    const finished = tracer.startSpan("finished call");
    finished.end();
    await context.with(trace.setSpan(context.active(), finished), () => s.app.database.probe());
    const live = tracer.startSpan("live call");
    await context.with(trace.setSpan(context.active(), live), async () => {
      await outsideAnyTrace(() => s.app.database.probe());
      await s.app.database.probe();
    });
    live.end();
    const queries = exporter.getFinishedSpans().filter((span) => span.attributes["db.system.name"] === "mysql");
    expect(queries.map((span) => span.parentSpanContext?.spanId)).toEqual([live.spanContext().spanId]);
  });
});

describe("at the process's exit", () => {
  it("main exports the spans the batch still holds on SIGTERM, under OTEL_SERVICE_NAME", async () => {
    const received: Buffer[] = [];
    const collector = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        received.push(Buffer.concat(chunks));
        response.writeHead(200, { "content-type": "application/x-protobuf" }).end();
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
    const database = uniqueDatabaseUrl("vb_traced");
    let child: ChildProcess | null = null;
    try {
      child = spawnMain({
        DATABASE_URL: database.url,
        GRPC_HOST: "127.0.0.1",
        GRPC_PORT: "0",
        SWEEP_INTERVAL_MS: "0",
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
        // Nothing leaves on the batch's schedule: only the exit's flush can send the span.
        OTEL_BSP_SCHEDULE_DELAY: "600000",
        OTEL_SERVICE_NAME: "billing-under-test",
      });
      const out = collect(child);
      await waitForOutput(() => out.output().stdout, "velobase-billing listening");
      const httpPort = /"httpPort":(\d+)/.exec(out.output().stdout)?.[1];
      expect((await fetch(`http://127.0.0.1:${httpPort}/v1/health`)).status).toBe(200);
      await sleep(200);
      expect(received).toEqual([]);
      child.kill("SIGTERM");
      expect((await out.exited).code).toBe(0);
      const sent = Buffer.concat(received).toString("latin1");
      expect(sent).toContain("GET /v1/health");
      expect(sent).toContain("billing-under-test");
    } finally {
      // A failed test must not leave the server running on the database it drops.
      if (child?.exitCode === null) child.kill("SIGKILL");
      collector.close();
      await database.drop();
    }
  });
});

describe("without an exporter (npm start with no OTEL_EXPORTER_OTLP_ENDPOINT)", () => {
  it("records no span, yet a call's log line carries its caller's trace id and a trace id of its own when it came without", async () => {
    const database = uniqueDatabaseUrl("vb_untraced");
    let child: ChildProcess | null = null;
    try {
      child = spawnMain({ DATABASE_URL: database.url, GRPC_HOST: "127.0.0.1", GRPC_PORT: "0", SWEEP_INTERVAL_MS: "0" });
      const out = collect(child);
      await waitForOutput(() => out.output().stdout, "velobase-billing listening");
      const httpPort = /"httpPort":(\d+)/.exec(out.output().stdout)?.[1];
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
      const health = (headers: Record<string, string>) => fetch(`http://127.0.0.1:${httpPort}/v1/health`, { headers });
      expect((await health({ traceparent: `00-${traceId}-00f067aa0ba902b7-01` })).status).toBe(200);
      expect((await health({})).status).toBe(200);
      await waitFor(async () => out.output().stdout.split('"http call"').length > 2, "both calls' log lines");
      child.kill("SIGTERM");
      expect((await out.exited).code).toBe(0);
      const calls = out
        .output()
        .stdout.split("\n")
        .filter((line) => line.includes('"http call"'))
        .map((line) => JSON.parse(line) as { trace_id?: string; span_id?: string });
      expect(calls.map((call) => call.trace_id === traceId)).toEqual([true, false]);
      expect(calls[1]?.trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect(calls.map((call) => typeof call.span_id)).toEqual(["string", "string"]);
    } finally {
      if (child?.exitCode === null) child.kill("SIGKILL");
      await database.drop();
    }
  });
});

describe("a WatchEvents stream", () => {
  const name = "grpc.velobase.billing.v1.EventService/WatchEvents";
  const openWatch = async () => {
    const customerId = uid("watched");
    await s.client.call("deposit", { customerId, amount: 5n });
    const watcher = new TestWatcher(s.app.port, s.apiKey, { customerId });
    await watcher.count(1);
    return watcher;
  };

  it("while idle makes no spans: the feed's shared poll is no part of its trace", async () => {
    const watcher = await openWatch();
    // The feed's tail polls while anyone watches, every 20 ms (EVENTS_POLL_INTERVAL_MS), slowing
    // to 250 ms once quiet: 300 ms without a span, once the stream has read what the deposit
    // stamped, holds at least one poll.
    let quiet: string[] = ["not yet"];
    for (let round = 0; round < 10 && quiet.length > 0; round++) {
      exporter.reset();
      await sleep(300);
      quiet = exporter.getFinishedSpans().map((span) => span.name);
    }
    expect(quiet).toEqual([]);
    watcher.close();
  });

  it("its client cancels ends its span, exported UNSET with CANCELLED", async () => {
    const watcher = await openWatch();
    exporter.reset();
    watcher.close();
    await expect.poll(() => serverSpanOf(exporter.getFinishedSpans(), name)).toBeDefined();
    const stream = serverSpanOf(exporter.getFinishedSpans(), name);
    expect(stream?.status).toEqual({ code: SpanStatusCode.UNSET });
    expect(stream?.attributes["rpc.grpc.status_code"]).toBe(1); // CANCELLED
  });
});

describe("a group commit", () => {
  it("runs in a span of its own, linked both ways to the calls it serves, which hold its database spans", async () => {
    const customerId = uid("grouped");
    await s.client.call("deposit", { customerId, amount: 1_000n });
    exporter.reset();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        tracer.startActiveSpan(`caller ${i}`, async (caller) => {
          try {
            await s.client.call("deduct", { customerId, transactionId: uid("g"), amount: 1n });
          } finally {
            caller.end();
          }
        }),
      ),
    );
    const spans = exporter.getFinishedSpans();
    const servers = spans.filter((span) => span.name === "grpc.velobase.billing.v1.BillingService/Deduct" && span.kind === SpanKind.SERVER);
    expect(servers).toHaveLength(20);
    const groups = spans.filter((span) => span.name === "billing group commit");
    expect(groups.length).toBeGreaterThan(0);
    const idOf = (span: ReadableSpan) => span.spanContext().spanId;
    const isDatabase = (span: ReadableSpan) => (span.attributes["db.system"] ?? span.attributes["db.system.name"]) === "mysql";
    for (const group of groups) {
      expect(group.parentSpanContext).toBeUndefined();
      const served = group.links.map((link) => link.context.spanId);
      expect(served.length).toBe(group.attributes["billing.calls"]);
      for (const spanId of served) {
        const server = servers.find((s) => idOf(s) === spanId);
        expect(server?.links.map((link) => link.context.spanId)).toContain(idOf(group));
      }
      expect(inTraceOf(group, spans).some(isDatabase)).toBe(true);
    }
    // Each call's write ran either alone, in its own trace, or in a group its span links to.
    for (const server of servers) {
      const linked = server.links.some((link) => groups.some((g) => idOf(g) === link.context.spanId));
      expect(linked || inTraceOf(server, spans).some(isDatabase)).toBe(true);
    }
    expect(servers.filter((server) => server.links.length > 0).length).toBeGreaterThan(0);
  });
});
