import { auditOf, type Caller } from "../domain/caller.js";
import { DEFAULT_CREDIT_TYPE, DEFAULT_SOURCE, DESCRIPTION_LENGTH_MAX } from "../domain/limits.js";
import type { DepositRequest } from "../domain/requests.js";
import { parseAmount, parseCreditType, parseId, parseSource, parseText } from "../domain/validation.js";
import { BillingError } from "../errors/billing-error.js";
import { utcTimeOf } from "./page-queries.js";

/** The deposit form's fields, as posted (text) and as shown again on the confirmation. */
export interface DepositForm {
  readonly amount: string;
  readonly credit_type: string;
  readonly source: string;
  readonly expires_at: string;
  readonly description: string;
  readonly idempotency_key: string;
}

const text = (body: Readonly<Record<string, unknown>>, key: string): string => {
  const value = body[key];
  return typeof value === "string" ? value.trim() : "";
};

export function depositFormOf(body: Readonly<Record<string, unknown>>): DepositForm {
  return {
    amount: text(body, "amount"),
    credit_type: text(body, "credit_type"),
    source: text(body, "source"),
    expires_at: text(body, "expires_at"),
    description: text(body, "description"),
    idempotency_key: text(body, "idempotency_key"),
  };
}

const WHOLE_NUMBER = /^\d{1,19}$/;

/**
 * The form as the Deposit operation's request, validated by the same domain rules as the API's:
 * a reason (description) is required, the key generated with the form makes a repeat a replay.
 * The customer's name, email and metadata are left as they are.
 */
export function depositRequestOf(form: DepositForm, customerId: string, caller: Caller): DepositRequest {
  if (!WHOLE_NUMBER.test(form.amount)) throw new BillingError("amount_must_be_positive", undefined, { field: "amount" });
  const description = parseText(form.description, "description", DESCRIPTION_LENGTH_MAX);
  if (description === "") {
    throw new BillingError("invalid_argument", "A reason is required: say in description why these credits are given.", {
      field: "description",
    });
  }
  return {
    ...auditOf(caller),
    customerId,
    amount: parseAmount(BigInt(form.amount)),
    idempotencyKey: parseId(form.idempotency_key, "idempotency_key"),
    creditType: parseCreditType(form.credit_type, DEFAULT_CREDIT_TYPE),
    source: parseSource(form.source, DEFAULT_SOURCE),
    startsAtMs: null,
    expiresAtMs: utcTimeOf(form.expires_at, "expires_at", "invalid_expires_at"),
    name: "",
    email: "",
    description,
    metadata: {},
  };
}
