import { FastifyOtelInstrumentation } from "@fastify/otel";
import { trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { GrpcInstrumentation } from "@opentelemetry/instrumentation-grpc";
import { MySQL2Instrumentation } from "@opentelemetry/instrumentation-mysql2";
import { NodeSDK, resources } from "@opentelemetry/sdk-node";
import { AlwaysOffSampler, BatchSpanProcessor, NoopSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { statementWithoutValues } from "../logger.js";
import { OutgoingSpans } from "./outgoing-spans.js";
import { keepForShutdown } from "./shutdown.js";

/** service.name unless OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) names another. */
export const SERVICE_NAME = "velobase-billing";

/** A round trip's statements as a span shows them, cut here (a write's batch is a few kilobytes). */
const SPAN_SQL_LENGTH_MAX = 8192;

export interface TelemetryOptions {
  /** Where finished spans go; by default OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, nowhere otherwise. */
  readonly spanProcessors?: SpanProcessor[];
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * OTLP over HTTP (protobuf) when OTEL_EXPORTER_OTLP_ENDPOINT (or its traces variant) is set; the
 * exporter reads the standard OTEL_EXPORTER_OTLP_* settings itself. Null without it.
 */
function defaultSpanProcessors(env: NodeJS.ProcessEnv): SpanProcessor[] | null {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  return endpoint ? [new BatchSpanProcessor(new OTLPTraceExporter())] : null;
}

/**
 * A round trip's statements for its span, masked only when the span will be recorded: below a
 * recording span (the call's). Masking a write's few kilobytes of text cost about 0.14 ms of CPU
 * a call, spent for nothing when the span is dropped (no exporter, a call not sampled, a
 * background loop's query).
 */
const statementForSpan = (statement: string): string =>
  trace.getActiveSpan()?.isRecording() === true ? statementWithoutValues(statement, SPAN_SQL_LENGTH_MAX) : "";

/** OTel's name for an HTTP server span: the method and the route template, never the path. */
const httpSpanName = (method: string, route: string | undefined) => (route === undefined ? method : `${method} ${route}`);

/**
 * The OpenTelemetry Node SDK with the instrumentations of our transports and database driver: a
 * span per gRPC call (@opentelemetry/instrumentation-grpc) and HTTP route (@fastify/otel, which
 * registers itself on every fastify instance), and a child span per database round trip
 * (@opentelemetry/instrumentation-mysql2). Spans pass OutgoingSpans before any exporter.
 * Metrics and logs stay with Prometheus and pino. Must start before the app's modules load: see
 * src/telemetry/register.ts.
 */
export function startTelemetry(options: TelemetryOptions = {}): NodeSDK {
  const processors = options.spanProcessors ?? defaultSpanProcessors(options.env ?? process.env);
  const sdk = new NodeSDK({
    // With nothing to export, spans are made but not recorded: each still has its trace id (the
    // caller's, from traceparent), which log lines carry and calls pass on, and the instrumentations
    // skip their attributes. Recording them for no exporter cost about a tenth of a lone call.
    ...(processors === null && { sampler: new AlwaysOffSampler() }),
    // The resource detectors (OTEL_SERVICE_NAME among them) are merged over this one.
    resource: resources.defaultResource().merge(resources.resourceFromAttributes({ "service.name": SERVICE_NAME })),
    spanProcessors: [new OutgoingSpans(processors ?? [new NoopSpanProcessor()])],
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      new GrpcInstrumentation(),
      // Statements only, never their values: the store sends its values escaped into the text
      // (store/run-transaction.ts), so each statement is masked as the logs mask it.
      new MySQL2Instrumentation({
        maskStatement: true,
        maskStatementHook: statementForSpan,
      }),
      new FastifyOtelInstrumentation({
        registerOnInitialization: true,
        requestHook: (span, request) => span.updateName(httpSpanName(request.method, request.routeOptions.url)),
      }),
    ],
  });
  sdk.start();
  keepForShutdown(sdk);
  return sdk;
}
