import { context, ROOT_CONTEXT } from "@opentelemetry/api";

/**
 * Runs `start` outside the caller's trace: for a loop that one call starts and that then serves
 * every call (the event feed's tail), whose work would otherwise all be spans of that first call.
 */
export function outsideAnyTrace<T>(start: () => T): T {
  return context.with(ROOT_CONTEXT, start);
}
