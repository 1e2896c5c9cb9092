/** Error families, as in the Velobase error format. */
export type ErrorType =
  | "auth_error"
  | "permission_denied"
  | "bad_request"
  | "not_found"
  | "conflict"
  | "too_many_requests"
  | "server_error";

export type GrpcStatusName =
  | "INVALID_ARGUMENT"
  | "FAILED_PRECONDITION"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "ABORTED"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED"
  | "RESOURCE_EXHAUSTED"
  | "INTERNAL"
  | "UNAVAILABLE";

export interface ErrorSpec {
  readonly type: ErrorType;
  readonly httpStatus: number;
  /** Name of the gRPC status code (google.rpc.Code). */
  readonly grpcStatus: GrpcStatusName;
  /** A retry of the same call may succeed later (adds google.rpc.RetryInfo). */
  readonly retryable: boolean;
  /** Default human message; a BillingError may give a more precise one. */
  readonly message: string;
}

const badRequest = (message: string): ErrorSpec => ({
  type: "bad_request",
  httpStatus: 400,
  grpcStatus: "INVALID_ARGUMENT",
  retryable: false,
  message,
});

// State-dependent refusals: the request is well formed but the ledger's state forbids it,
// so FAILED_PRECONDITION rather than INVALID_ARGUMENT (gRPC's guidance: retrying the same call
// is pointless until the state changes).
const precondition = (message: string): ErrorSpec => ({
  type: "bad_request",
  httpStatus: 400,
  grpcStatus: "FAILED_PRECONDITION",
  retryable: false,
  message,
});

const auth = (message: string): ErrorSpec => ({
  type: "auth_error",
  httpStatus: 401,
  grpcStatus: "UNAUTHENTICATED",
  retryable: false,
  message,
});

const internal = (message: string): ErrorSpec => ({
  type: "server_error",
  httpStatus: 500,
  grpcStatus: "INTERNAL",
  retryable: false,
  message,
});

/**
 * The single source of every public error code. Clients branch on these codes, so a code is
 * never renamed or removed; `docs/errors.md` is generated from this table.
 */
export const ERROR_CATALOG = {
  missing_api_key: auth("An API key is required."),
  invalid_api_key: auth("The API key is not valid."),
  api_key_revoked: auth("The API key has been revoked."),
  // The key is valid, so not UNAUTHENTICATED: it lacks the scope, and retrying cannot help.
  permission_denied: {
    type: "permission_denied",
    httpStatus: 403,
    grpcStatus: "PERMISSION_DENIED",
    retryable: false,
    message: "The API key's scope does not allow this call.",
  },

  customer_id_required: badRequest("customer_id is required."),
  transaction_id_required: badRequest("transaction_id is required."),
  amount_must_be_positive: badRequest("amount must be a positive integer."),
  actual_amount_must_be_non_negative: badRequest("actual_amount must not be negative."),
  invalid_starts_at: badRequest("starts_at is not a valid timestamp."),
  invalid_expires_at: badRequest("expires_at must be a valid timestamp in the future."),
  invalid_datetime_range: badRequest("expires_at must be after starts_at."),
  invalid_credit_types: badRequest("Credit types must be 1-64 characters of [a-z0-9_.-]."),
  invalid_auto_settlement: badRequest("Set at most one of unfreeze_after_seconds and consume_after_seconds."),
  invalid_auto_settlement_ttl: badRequest("unfreeze_after_seconds must be 1-2592000 and consume_after_seconds 1-604800."),
  invalid_page_size: badRequest("page_size must be between 1 and 100."),
  invalid_page_token: badRequest("page_token is not valid for this request."),
  // Velobase's HTTP name for a page size out of range (the `limit` of the ledger, slot event and
  // entitlement event listings).
  invalid_limit: badRequest("limit must be between 1 and 100."),
  invalid_operation_type: badRequest("The operation type filter names an unknown operation type."),
  invalid_argument: badRequest("A field of the request is not valid."),

  insufficient_balance: precondition("The customer's available balance is insufficient."),
  insufficient_balance_in_selected_credit_types: precondition("The available balance in the selected credit types is insufficient."),
  no_consumable_freeze_records: precondition("The hold has no frozen amount left to consume."),
  freeze_records_already_consumed: precondition("The hold was already consumed with another actual_amount."),
  no_unfreezable_records: precondition("There is no frozen hold to unfreeze."),
  freeze_auto_unfrozen: precondition("The hold was unfrozen automatically when it timed out."),
  actual_amount_exceeds_frozen_amount: precondition("actual_amount exceeds the frozen amount; set allow_overage to charge the excess."),
  // Reversals. A refund asks for more than the charge still has to give back (ErrorInfo:
  // requested, refundable): a smaller amount, or none (all that is left), would go through.
  refund_exceeds_refundable: precondition("The amount exceeds what is still refundable of the transaction."),
  // The transaction exists and is the caller's, but charged nothing that can go back: a hold
  // still open or unfrozen, or a charge already refunded whole. Consume first, or nothing to do.
  transaction_not_refundable: precondition(
    "The transaction has nothing to refund: a hold still open or unfrozen, or already refunded whole.",
  ),
  // The deposit exists, but its account has none of it available (used, frozen, expired, or
  // voided already), or less than the amount asked (ErrorInfo: requested, voidable).
  deposit_not_voidable: precondition("The deposit has nothing available to void, or less than the amount asked."),
  // The events after the cursor were pruned (EVENTS_RETENTION_HOURS): the cursor was valid, but
  // the feed's state no longer serves it, and retrying with it never will, hence a precondition.
  cursor_expired: precondition("The events after this cursor were pruned; start again from an empty cursor."),

  customer_not_found: {
    type: "not_found",
    httpStatus: 404,
    grpcStatus: "NOT_FOUND",
    retryable: false,
    message: "The customer does not exist.",
  },
  // An HTTP route that does not exist; gRPC answers UNIMPLEMENTED for unknown methods itself.
  not_found: {
    type: "not_found",
    httpStatus: 404,
    grpcStatus: "NOT_FOUND",
    retryable: false,
    message: "The requested resource does not exist.",
  },
  transaction_not_found: {
    type: "not_found",
    httpStatus: 404,
    grpcStatus: "NOT_FOUND",
    retryable: false,
    message: "The transaction does not exist.",
  },

  // A record_id that is not a deposit of this customer: another customer's, another project's or
  // any other kind of entry is reported as missing, so nothing of it is hinted at.
  deposit_not_found: {
    type: "not_found",
    httpStatus: 404,
    grpcStatus: "NOT_FOUND",
    retryable: false,
    message: "The customer has no deposit with this record_id.",
  },

  // The key already names another request: the caller's retry logic is wrong, not the state.
  transaction_conflict: {
    type: "conflict",
    httpStatus: 409,
    grpcStatus: "ALREADY_EXISTS",
    retryable: false,
    message: "The transaction id is already used by another customer.",
  },
  idempotency_conflict: {
    type: "conflict",
    httpStatus: 409,
    grpcStatus: "ALREADY_EXISTS",
    retryable: false,
    message: "The key was already used with different parameters.",
  },
  // ABORTED: the caller and the hold disagree about who owns it; the operation was refused.
  customer_scope_mismatch: {
    type: "conflict",
    httpStatus: 409,
    grpcStatus: "ABORTED",
    retryable: false,
    message: "The transaction belongs to another customer.",
  },

  // Slots and entitlements (Velobase's other products). Their inputs are malformed requests;
  // their refusals depend on a pool's state, so they map as the credit codes above do.
  invalid_from_at: badRequest("from_at is not a valid timestamp."),
  invalid_to_at: badRequest("to_at is not a valid timestamp."),
  // A slot's wallet and resource_id have no default (a credit wallet does); Velobase's SDKs list
  // these two codes, so a client that branches on them finds them here too.
  wallet_required: badRequest("wallet is required."),
  resource_id_required: badRequest("resource_id is required."),
  feature_key_required: badRequest("feature_key is required."),
  value_required: badRequest("value is required."),
  invalid_valid_from: badRequest("valid_from is not a valid timestamp."),
  invalid_valid_until: badRequest("valid_until is not a valid timestamp."),
  entitlement_validation_error: badRequest("valid_until must be after valid_from."),
  slot_insufficient_capacity: precondition("The wallet's pools lack the capacity to claim this amount."),
  slot_capacity_below_in_use: precondition("Capacity cannot go below what is in use."),
  // The wallet has room in total, but a claim is never split over pools.
  slot_split_required: precondition("No single pool of the wallet has room for the whole amount; a claim is never split across pools."),
  slot_pool_not_found: {
    type: "not_found",
    httpStatus: 404,
    grpcStatus: "NOT_FOUND",
    retryable: false,
    message: "The customer has no slot pool for this wallet.",
  },
  slot_holding_not_found: {
    type: "not_found",
    httpStatus: 404,
    grpcStatus: "NOT_FOUND",
    retryable: false,
    message: "The resource holds no slot in this wallet.",
  },
  // Entitlements are set on customers that billing created; they never create one.
  entitlement_customer_not_found: {
    type: "not_found",
    httpStatus: 404,
    grpcStatus: "NOT_FOUND",
    retryable: false,
    message: "The customer does not exist.",
  },

  rate_limit_exceeded: {
    type: "too_many_requests",
    httpStatus: 429,
    grpcStatus: "RESOURCE_EXHAUSTED",
    retryable: true,
    message: "Too many requests; retry later.",
  },

  billing_account_not_found: internal("An account referenced by the hold no longer exists."),
  freeze_records_inconsistent: internal("The hold's records are inconsistent."),
  server_error: internal("An internal error occurred."),

  service_unavailable: {
    type: "server_error",
    httpStatus: 503,
    grpcStatus: "UNAVAILABLE",
    retryable: true,
    message: "The service is temporarily unavailable; retry later.",
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

export const ERROR_CODES = Object.keys(ERROR_CATALOG) as ErrorCode[];

/** Suggested client back-off for retryable errors without a known wait, sent as google.rpc.RetryInfo. */
export const RETRY_DELAY_MS = 1000;
