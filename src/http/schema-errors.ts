import { BillingError } from "../errors/billing-error.js";
import type { ErrorCode } from "../errors/catalog.js";
import { CREDIT_TYPES_PER_REQUEST_MAX } from "../domain/limits.js";
import { notARecordIdMessage } from "../domain/validation.js";

export const notAJsonObject = () => new BillingError("invalid_argument", "The request body must be a JSON object.", { field: "body" });

/** What a schema check reports (TypeBox's errors, shaped like Ajv's). */
export interface SchemaIssue {
  readonly keyword: string;
  readonly instancePath: string;
  readonly message?: string;
  readonly params?: Readonly<Record<string, unknown>>;
}

export interface FieldCodes {
  /** Absent or empty. */
  readonly required?: ErrorCode;
  /** Any other failure, unless `byKeyword` names the keyword. */
  readonly invalid: ErrorCode;
  readonly byKeyword?: Readonly<Partial<Record<string, ErrorCode>>>;
  /** The message of a specific `invalid` code whose catalogue message names another field (a threshold checked as an amount). */
  readonly message?: string;
  /** A failure's own message, by keyword, where the code's message would say something else (gRPC's words). */
  readonly messageByKeyword?: Readonly<Partial<Record<string, string>>>;
}

/**
 * The catalogue code of a field that fails its schema, as Velobase reports it. Fields not listed
 * are invalid_argument.
 */
const FIELD_CODES: Readonly<Record<string, FieldCodes>> = {
  customer_id: { required: "customer_id_required", invalid: "invalid_argument" },
  transaction_id: { required: "transaction_id_required", invalid: "invalid_argument" },
  // Not an integer, or not positive; beyond the amount limit is invalid_argument, as over gRPC.
  amount: { required: "amount_must_be_positive", invalid: "amount_must_be_positive", byKeyword: { maximum: "invalid_argument" } },
  actual_amount: { invalid: "invalid_argument", byKeyword: { minimum: "actual_amount_must_be_non_negative" } },
  starts_at: { invalid: "invalid_starts_at" },
  expires_at: { invalid: "invalid_expires_at" },
  wallet: { invalid: "invalid_credit_types" },
  credit_type: { invalid: "invalid_credit_types" },
  credit_types: {
    invalid: "invalid_credit_types",
    messageByKeyword: { maxItems: `At most ${CREDIT_TYPES_PER_REQUEST_MAX} credit types.` },
  },
  unfreeze_after_seconds: { invalid: "invalid_auto_settlement_ttl" },
  consume_after_seconds: { invalid: "invalid_auto_settlement_ttl" },
  limit: { invalid: "invalid_limit" },
  operation_type: { invalid: "invalid_operation_type" },
  cursor: { invalid: "invalid_page_token" },
  resource_id: { required: "resource_id_required", invalid: "invalid_argument" },
  refund_id: { required: "invalid_argument", invalid: "invalid_argument" },
  record_id: { invalid: "invalid_argument", messageByKeyword: { pattern: notARecordIdMessage("record_id") } },
  reverses_record_id: { invalid: "invalid_argument", messageByKeyword: { pattern: notARecordIdMessage("reverses_record_id") } },
  feature_key: { required: "feature_key_required", invalid: "invalid_argument" },
  value: { required: "value_required", invalid: "invalid_argument" },
  valid_from: { invalid: "invalid_valid_from" },
  valid_until: { invalid: "invalid_valid_until" },
  from_at: { invalid: "invalid_from_at" },
  to_at: { invalid: "invalid_to_at" },
};

/** A route's own codes for fields whose name means something else on the credit routes. */
export type FieldCodeOverrides = Readonly<Record<string, FieldCodes>>;

function valueAt(input: unknown, field: string): unknown {
  return input !== null && typeof input === "object" ? (input as Record<string, unknown>)[field] : undefined;
}

/** The first schema failure of a request part as a catalogue error naming the field. */
export function schemaIssueToError(issue: SchemaIssue | undefined, input: unknown, overrides: FieldCodeOverrides = {}): BillingError {
  if (!issue) return new BillingError("invalid_argument");
  const missing = issue.keyword === "required" ? issue.params?.requiredProperties : undefined;
  const field = Array.isArray(missing) ? String(missing[0]) : issue.instancePath.split("/")[1];
  if (field === undefined || field === "") return notAJsonObject();
  const codes = overrides[field] ?? FIELD_CODES[field] ?? { invalid: "invalid_argument" };
  const value = valueAt(input, field);
  // JSON null is an absent field (Velobase's Python SDK sends None as null).
  if (codes.required && (value === undefined || value === null || value === "")) {
    return new BillingError(codes.required, `${field} is required.`, { field });
  }
  if (issue.keyword === "required") return new BillingError("invalid_argument", `${field} is required.`, { field });
  const code = codes.byKeyword?.[issue.keyword] ?? codes.invalid;
  const detail = inGrpcWords(field, issue) ?? (issue.message ? `${field} ${issue.message}.` : undefined);
  // A specific code keeps its catalogue message (or the route's); invalid_argument says what was wrong.
  const message = codes.messageByKeyword?.[issue.keyword] ?? (code === "invalid_argument" ? detail : codes.message);
  return new BillingError(code, message, { field });
}

/** A character-class pattern of our schemas (`^[…]{m,n}$`, optionally also empty: `^$|…`). */
const CHARACTERS_PATTERN = /^(?:\^\$\|)?\^\[([^\]]+)\]\{(\d+),(\d+)\}\$$/;

/**
 * The words gRPC's parsers use for the same fault (src/domain/validation.ts), so that a client
 * reads one message whichever transport it calls; null where the schema's own words stand.
 */
function inGrpcWords(field: string, issue: SchemaIssue): string | null {
  const limit = issue.params?.limit;
  switch (issue.keyword) {
    case "maximum":
      return typeof limit === "number" || typeof limit === "bigint" ? `${field} must be at most ${limit}.` : null;
    case "maxLength":
      return typeof limit === "number" ? `${field} must be at most ${limit} characters.` : null;
    case "pattern": {
      const m = CHARACTERS_PATTERN.exec(String(issue.params?.pattern ?? ""));
      // An empty value is "none given" where the pattern allows it, so a bad one has at least one character.
      return m ? `${field} must be ${Math.max(1, Number(m[2]))}-${m[3]} characters of [${m[1]}].` : null;
    }
    case "anyOf":
    case "enum":
      return `${field} is not a known value.`;
    default:
      return null;
  }
}

/** The schema issue of a top-level field that is not an integer. */
export const notAnIntegerIssue = (field: string): SchemaIssue => ({
  keyword: "type",
  instancePath: `/${field}`,
  message: "must be an integer",
});
