import { ERROR_CATALOG, type ErrorCode, type ErrorSpec } from "./catalog.js";

/** Facts attached to an error, sent as google.rpc.ErrorInfo metadata (string values). */
export type ErrorFacts = Readonly<Record<string, string | bigint | number>>;

/** A domain failure with a public code from the catalogue. */
export class BillingError extends Error {
  readonly code: ErrorCode;
  readonly facts: ErrorFacts;

  constructor(code: ErrorCode, message?: string, facts: ErrorFacts = {}, options?: ErrorOptions) {
    super(message ?? ERROR_CATALOG[code].message, options);
    this.name = "BillingError";
    this.code = code;
    this.facts = facts;
  }

  get spec(): ErrorSpec {
    return ERROR_CATALOG[this.code];
  }
}
