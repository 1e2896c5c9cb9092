import { ERROR_CATALOG, type ErrorCode, type ErrorSpec } from "./catalog.js";

/** Facts attached to an error, sent as google.rpc.ErrorInfo metadata (string values). */
export type ErrorFacts = Readonly<Record<string, string | bigint | number>>;

export interface BillingErrorOptions extends ErrorOptions {
  readonly retryDelayMs?: number;
}

/**
 * The longest message and fact value an error carries. A request value echoed in one (a credit
 * type of 40,000 characters) must not grow the answer with it: over gRPC the message travels twice
 * in the trailers (grpc-message and the status details), and trailers past 64 KB are never sent
 * by grpc-js, so the call hung and every later call on its connection with it.
 */
export const ERROR_MESSAGE_CHARS_MAX = 1_000;
/** Room for the longest fact we make: insufficient_credits' wallets, 32 credit types of 64 characters joined. */
export const ERROR_FACT_CHARS_MAX = 2_100;

/** `text` cut to `max` characters, ending in "…" when cut (never half a surrogate pair). */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text;
  const kept = text.slice(0, max - 1);
  return `${/[\uD800-\uDBFF]$/.test(kept) ? kept.slice(0, -1) : kept}…`;
}

/** A request value as an error message shows it: at most 64 characters of it. */
export const echoed = (value: string): string => cutText(value, 64);

/** A domain failure with a public code from the catalogue. */
export class BillingError extends Error {
  readonly code: ErrorCode;
  readonly facts: ErrorFacts;
  /** The real wait before a retry can succeed, when known (rate limits); sent as RetryInfo. */
  readonly retryDelayMs: number | null;

  constructor(code: ErrorCode, message?: string, facts: ErrorFacts = {}, options?: BillingErrorOptions) {
    super(cutText(message ?? ERROR_CATALOG[code].message, ERROR_MESSAGE_CHARS_MAX), options);
    this.name = "BillingError";
    this.code = code;
    this.facts = Object.fromEntries(
      Object.entries(facts).map(([name, value]) => [name, typeof value === "string" ? cutText(value, ERROR_FACT_CHARS_MAX) : value]),
    );
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
