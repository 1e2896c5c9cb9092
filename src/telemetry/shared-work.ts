import { type Context, context, ROOT_CONTEXT, type Span, SpanStatusCode, trace } from "@opentelemetry/api";

/** The tracer our own spans come from (the instrumentations have theirs). */
const TRACER = "velobase-billing";

/** Where a call stands in its trace when it hands its write to work shared with other calls. */
export type CallerTrace = Context;

export const callerTrace = (): CallerTrace => context.active();

/**
 * Runs work done for several calls at once (a group commit's one transaction) in a span of its
 * own, linked both ways to each caller's span: its database spans belong to no single caller's
 * trace, and each caller's trace shows where its write went. Without callers' spans (tracing off)
 * it just runs the work.
 */
export async function runForCallers<T>(name: string, callers: readonly CallerTrace[], work: () => Promise<T>): Promise<T> {
  const spans = callers.map((caller) => trace.getSpan(caller)).filter((span): span is Span => span !== undefined);
  if (spans.length === 0) return work();
  const options = {
    root: true,
    links: spans.map((span) => ({ context: span.spanContext() })),
    attributes: { "billing.calls": callers.length },
  };
  return trace.getTracer(TRACER).startActiveSpan(name, options, ROOT_CONTEXT, async (shared) => {
    for (const span of spans) span.addLink({ context: shared.spanContext() });
    try {
      return await work();
    } catch (error) {
      shared.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      shared.end();
    }
  });
}
