import { ERROR_CATALOG, type ErrorCode, type ErrorSpec } from "./catalog.js";

/** Facts attached to an error, sent as google.rpc.ErrorInfo metadata (string values). */
export type ErrorFacts = Readonly<Record<string, string | bigint | number>>;

export interface BillingErrorOptions extends ErrorOptions {
  readonly retryDelayMs?: number;
}

/** A domain failure with a public code from the catalogue. */
export class BillingError extends Error {
  readonly code: ErrorCode;
  readonly facts: ErrorFacts;
  /** The real wait before a retry can succeed, when known (rate limits); sent as RetryInfo. */
  readonly retryDelayMs: number | null;

  constructor(code: ErrorCode, message?: string, facts: ErrorFacts = {}, options?: BillingErrorOptions) {
    super(message ?? ERROR_CATALOG[code].message, options);
    this.name = "BillingError";
    this.code = code;
    this.facts = facts;
    this.retryDelayMs = options?.retryDelayMs ?? null;
  }

  get spec(): ErrorSpec {
    return ERROR_CATALOG[this.code];
  }
}

/**
 * A call refused before its transaction began because its deadline had passed or its caller had
 * gone (service_unavailable): the transports count it apart from a failure of ours when its
 * caller is indeed gone.
 */
export class CallNotRun extends BillingError {
  constructor() {
    super("service_unavailable", "The call's deadline passed before it ran.");
  }
}

/**
 * Any thrown value as a BillingError: BillingErrors pass through, everything else (bugs,
 * driver failures that nobody classified) becomes server_error, keeping the original as cause.
 */
export function toBillingError(thrown: unknown): BillingError {
  if (thrown instanceof BillingError) return thrown;
  return new BillingError("server_error", undefined, {}, { cause: thrown });
}
