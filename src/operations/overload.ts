import { OVERLOAD_RETRY_DELAY_MS } from "../domain/limits.js";
import { BillingError } from "../errors/billing-error.js";

/** Where a call was refused for overload: its customer's queue, the line to go side by side, the gate of the other writes. */
export type OverloadedLine = "customer" | "side_by_side" | "gate";

/** Told when a call is refused for overload (the metrics count them apart from a key's rate limit). */
export type OverloadObserver = (line: OverloadedLine) => void;

/**
 * A call refused because a line of this instance is full: rate_limit_exceeded (retryable; the
 * code clients already back off on), with a wait drawn from OVERLOAD_RETRY_DELAY_MS instead of
 * the catalogue's fixed second, so that the callers refused in one burst spread their retries.
 */
export function overloaded(
  line: OverloadedLine,
  message: string,
  facts: Record<string, number>,
  observe?: OverloadObserver,
  random: () => number = Math.random,
): BillingError {
  observe?.(line);
  const { min, max } = OVERLOAD_RETRY_DELAY_MS;
  const retryDelayMs = min + Math.floor(random() * (max - min + 1));
  return new BillingError("rate_limit_exceeded", message, { ...facts, retry_delay_ms: retryDelayMs }, { retryDelayMs });
}
