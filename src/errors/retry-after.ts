import type { BillingError } from "./billing-error.js";
import { RETRY_DELAY_MS } from "./catalog.js";

/**
 * Seconds for Retry-After on a retryable error (the API's and the console's answers): the error's
 * own delay when it has one (the rate limiter knows when the bucket refills; gRPC sends the same
 * as RetryInfo), else the default.
 */
export function retryAfterSeconds(error: BillingError): number | null {
  if (!error.spec.retryable) return null;
  return Math.max(1, Math.ceil((error.retryDelayMs ?? RETRY_DELAY_MS) / 1000));
}
