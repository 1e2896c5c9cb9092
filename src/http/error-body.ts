import type { BillingError, ErrorFacts } from "../errors/billing-error.js";

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
