import { Writable } from "node:stream";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTelemetry } from "../../src/telemetry/sdk.js";
import type { TestServer } from "../support/server.js";

// As src/telemetry/register.ts does under --import: the SDK starts before the app's modules load
// (they are imported below, after it), here with the SDK's in-memory exporter.
const exporter = new InMemorySpanExporter();
const sdk = startTelemetry({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const { startTestServer } = await import("../support/server.js");
const { uid } = await import("../support/fixtures.js");

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
    expect(server).toBeDefined();
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
    const route = spans.find((span) => span.attributes["http.route"] === "/v1/customers/deposit");
    expect(route).toBeDefined();
    const traceId = route?.spanContext().traceId;
    const inTrace = spans.filter((span) => span.spanContext().traceId === traceId);
    expect(inTrace.some((span) => (span.attributes["db.system"] ?? span.attributes["db.system.name"]) === "mysql")).toBe(true);
    const logged = lines.filter((line) => line.trace_id !== undefined);
    expect(logged.length).toBeGreaterThan(0);
    expect(new Set(logged.map((line) => line.trace_id))).toEqual(new Set([traceId]));
  });
});
