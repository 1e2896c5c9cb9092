import { isSpanContextValid, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, it } from "vitest";
import { startTelemetry } from "../../src/telemetry/sdk.js";

// With nothing to export, spans are made (a trace id for the logs) but not recorded: recording
// them for nothing cost about a tenth of a lone call. With an exporter, they are recorded.

afterEach(() => {
  trace.disable();
});

describe("the tracing SDK's sampling", () => {
  it("without an exporter: a span has a valid trace id and records nothing", async () => {
    const sdk = startTelemetry({ env: {} });
    const span = trace.getTracer("test").startSpan("call");
    expect([span.isRecording(), isSpanContextValid(span.spanContext())]).toEqual([false, true]);
    span.end();
    await sdk.shutdown();
  });

  it("with an exporter: a span is recorded and exported", async () => {
    const exporter = new InMemorySpanExporter();
    const processor = new SimpleSpanProcessor(exporter);
    const sdk = startTelemetry({ spanProcessors: [processor] });
    const span = trace.getTracer("test").startSpan("call");
    expect(span.isRecording()).toBe(true);
    span.end();
    await processor.forceFlush();
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(["call"]);
    await sdk.shutdown();
  });
});
