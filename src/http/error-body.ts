import type { BillingError, ErrorFacts } from "../errors/billing-error.js";
import { RETRY_DELAY_MS } from "../errors/catalog.js";

export interface ErrorBodyJson {
  readonly error: {
    readonly code: string;
    readonly type: string;
    readonly message: string;
    readonly details: Record<string, string | number>;
    readonly retryable: boolean;
    readonly request_id: string;
  };
}

/**
 * Facts as JSON: ids as strings (as every response sends them, `record_id` included), amounts as
 * numbers when exact, else as decimal strings (never rounded).
 */
function detailsOf(facts: ErrorFacts): Record<string, string | number> {
  const details: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(facts)) {
    if (typeof value !== "bigint") details[key] = value;
    else details[key] = key.endsWith("_id") || !Number.isSafeInteger(Number(value)) ? value.toString() : Number(value);
  }
  return details;
}

/** Velobase's error body. Retrying may help on 5xx and 429, whatever the gRPC side says. */
export function errorBody(error: BillingError, requestId: string): ErrorBodyJson {
  const { spec } = error;
  return {
    error: {
      code: error.code,
      type: spec.type,
      message: error.message,
      details: detailsOf(error.facts),
      retryable: spec.httpStatus >= 500 || spec.httpStatus === 429,
      request_id: requestId,
    },
  };
}

/**
 * Seconds for Retry-After on a retryable error: the error's own delay when it has one (the rate
 * limiter knows when the bucket refills; gRPC sends the same as RetryInfo), else the default.
 */
export function retryAfterSeconds(error: BillingError): number | null {
  if (!error.spec.retryable) return null;
  return Math.max(1, Math.ceil((error.retryDelayMs ?? RETRY_DELAY_MS) / 1000));
}
