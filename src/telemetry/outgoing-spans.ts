import { type Context, SpanStatusCode, trace } from "@opentelemetry/api";
import type { ReadableSpan, Span, SpanProcessor, TimedEvent } from "@opentelemetry/sdk-trace-base";
import { errorMessageShown, messageWithoutValues } from "../logger.js";
import { isRefusal } from "./span-outcome.js";

const DATABASE_SCOPE = "@opentelemetry/instrumentation-mysql2";

/** Paths and queries carry customer ids and emails; http.route says which route was called. */
const URL_ATTRIBUTES: readonly string[] = ["url.full", "url.path", "url.query", "http.target", "http.url"];

/**
 * A database round trip that belongs to no live call: a background loop's (the event stamper,
 * the sweeper, leases, health checks), or one of a loop that a call started and that outlived it.
 */
function isBackgroundQuery(span: Span, parentContext: Context): boolean {
  if (span.instrumentationScope.name !== DATABASE_SCOPE) return false;
  const parent = trace.getSpan(parentContext);
  return parent === undefined || (!parent.isRecording() && !parent.spanContext().isRemote);
}

/** A stack trace whose message (every line before the first frame) is masked. */
function maskedStack(stack: string): string {
  const lines = stack.split("\n");
  const firstFrame = lines.findIndex((line) => /^\s+at /.test(line));
  const head = firstFrame === -1 ? lines : lines.slice(0, firstFrame);
  const name = /^(\w*Error): /.exec(head[0] ?? "")?.[1];
  const message = head.join("\n").slice(name === undefined ? 0 : name.length + 2);
  const shown = name === undefined ? messageWithoutValues(message) : `${name}: ${errorMessageShown(name, message)}`;
  return [shown, ...(firstFrame === -1 ? [] : lines.slice(firstFrame))].join("\n");
}

/** An exception event with its message and its stack trace's message masked. */
function maskedException(event: TimedEvent): TimedEvent {
  if (event.name !== "exception" || event.attributes === undefined) return event;
  const { "exception.message": message, "exception.stacktrace": stack, "exception.type": type } = event.attributes;
  const attributes = { ...event.attributes };
  if (typeof message === "string")
    attributes["exception.message"] = errorMessageShown(typeof type === "string" ? type : undefined, message);
  if (typeof stack === "string") attributes["exception.stacktrace"] = maskedStack(stack);
  return { ...event, attributes };
}

const hasMessages = (span: ReadableSpan) => span.status.message !== undefined || span.events.some((event) => event.name === "exception");

/**
 * `span` as it may leave the process: no URL, no value inside an error message, and a refusal
 * neither ERROR nor carrying an exception.
 */
function outgoing(span: ReadableSpan): ReadableSpan {
  const refusal = isRefusal(span);
  if (!refusal && !hasMessages(span) && !URL_ATTRIBUTES.some((key) => key in span.attributes)) return span;
  const { message } = span.status;
  // The status repeats the exception's message; its type says whether that may be withheld.
  const thrownType = span.events.find((event) => event.name === "exception")?.attributes?.["exception.type"];
  return {
    name: span.name,
    kind: span.kind,
    spanContext: () => span.spanContext(),
    ...(span.parentSpanContext && { parentSpanContext: span.parentSpanContext }),
    startTime: span.startTime,
    endTime: span.endTime,
    status: refusal
      ? { code: SpanStatusCode.UNSET }
      : {
          code: span.status.code,
          ...(message !== undefined && { message: errorMessageShown(typeof thrownType === "string" ? thrownType : undefined, message) }),
        },
    attributes: Object.fromEntries(Object.entries(span.attributes).filter(([key]) => !URL_ATTRIBUTES.includes(key))),
    links: span.links,
    events: refusal ? span.events.filter((event) => event.name !== "exception") : span.events.map(maskedException),
    duration: span.duration,
    ended: span.ended,
    resource: span.resource,
    instrumentationScope: span.instrumentationScope,
    droppedAttributesCount: span.droppedAttributesCount,
    droppedEventsCount: span.droppedEventsCount,
    droppedLinksCount: span.droppedLinksCount,
  };
}

/**
 * Stands before the exporting processors: drops background database spans and hands on every
 * other span as `outgoing` shapes it. A processor, not a sampler, so OTEL_TRACES_SAMPLER still
 * applies; a view at onEnd because the SDK's span cannot unset a status nor drop an attribute.
 */
export class OutgoingSpans implements SpanProcessor {
  private readonly dropped = new WeakSet<object>();

  constructor(private readonly next: readonly SpanProcessor[]) {}

  onStart(span: Span, parentContext: Context): void {
    if (isBackgroundQuery(span, parentContext)) this.dropped.add(span);
    else for (const processor of this.next) processor.onStart(span, parentContext);
  }

  onEnding(span: Span): void {
    if (!this.dropped.has(span)) for (const processor of this.next) processor.onEnding?.(span);
  }

  onEnd(span: ReadableSpan): void {
    if (this.dropped.has(span)) return;
    const shaped = outgoing(span);
    for (const processor of this.next) processor.onEnd(shaped);
  }

  async forceFlush(): Promise<void> {
    await Promise.all(this.next.map((processor) => processor.forceFlush()));
  }

  async shutdown(): Promise<void> {
    await Promise.all(this.next.map((processor) => processor.shutdown()));
  }
}
