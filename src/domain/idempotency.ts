import { BillingError } from "../errors/billing-error.js";
import { fingerprint } from "./fingerprint.js";

/**
 * The key spaces of the idempotency envelope: a deposit's idempotency_key, a Deduct's or Freeze's
 * transaction_id, the settlement (Consume or Unfreeze) of that transaction_id, a capacity
 * Grant's or Revoke's idempotency_key (one key space for both, as slot_keys had), a Refund's
 * refund_id and a VoidDeposit's void_id.
 */
export const OUTCOME_SCOPES = ["DEPOSIT", "SPEND", "SETTLE", "SLOT", "REFUND", "VOID"] as const;
export type OutcomeScope = (typeof OUTCOME_SCOPES)[number];

/** A write already made under a key: who made it, what it asked, what it answered. */
export interface StoredOutcome {
  readonly customerId: string;
  readonly requestFingerprint: string;
  readonly response: string;
}

/** Where a keyed write's outcome is stored, and how its request is recognized on a retry. */
export interface IdempotencyEnvelope extends RequestFingerprints {
  readonly scope: OutcomeScope;
  readonly key: string;
}

/**
 * A request's fingerprints: the one a new outcome is stored under (version 2, labels left out)
 * and the one outcomes stored before version 2 were (version 1, the whole canonical request).
 */
export interface RequestFingerprints {
  readonly requestFingerprint: string;
  readonly legacyFingerprint: string;
}

/** What a replay decision compares: without the version 1 fingerprint, a version 1 outcome never matches. */
export type ComparedFingerprints = Pick<RequestFingerprints, "requestFingerprint"> &
  Partial<Pick<RequestFingerprints, "legacyFingerprint">>;

/**
 * Fields that only label a write (what it is for, who the customer is): a retry that changes them
 * is still the same write, as in Velobase's hosted API. The money fields (customer, amounts,
 * credit types, source, dates, hold deadlines) are what a fingerprint compares.
 */
export const LABEL_FIELDS = ["description", "businessType", "metadata", "name", "email"] as const;

/**
 * Version 2 fingerprints say so in their text (`v2:` and 61 hex digits of the SHA-256, the 64
 * characters the column holds), so a stored fingerprint is compared with its own version:
 * version 1 ones are 64 bare hex digits of the whole canonical request.
 */
const FINGERPRINT_V2_PREFIX = "v2:";
const FINGERPRINT_LENGTH = 64;

export function requestFingerprints(canonicalRequest: CanonicalRequest): RequestFingerprints {
  // The call's request id is never part of the request: a retry has another one.
  const request = { ...canonicalRequest, requestId: undefined };
  const moneyFields: Record<string, unknown> = { ...request };
  for (const label of LABEL_FIELDS) delete moneyFields[label];
  const v2 = fingerprint(moneyFields).slice(0, FINGERPRINT_LENGTH - FINGERPRINT_V2_PREFIX.length);
  return { requestFingerprint: `${FINGERPRINT_V2_PREFIX}${v2}`, legacyFingerprint: fingerprint(request) };
}

/** Whether a stored fingerprint is the request's, in the stored fingerprint's version. */
export const sameRequest = (storedFingerprint: string, request: ComparedFingerprints): boolean =>
  storedFingerprint.startsWith(FINGERPRINT_V2_PREFIX)
    ? storedFingerprint === request.requestFingerprint
    : storedFingerprint === request.legacyFingerprint;

/** A request as fingerprinted: the operation's name and the fields that make it what it is. */
export interface CanonicalRequest {
  readonly op: string;
  readonly [field: string]: unknown;
}

/**
 * The envelope of a request. `canonicalRequest` names the operation (`op`) and holds everything
 * the caller sent but the key itself when the key is not part of the request (a deposit's), and
 * never who sent it (project, API key) or in which call (its request id, dropped in
 * requestFingerprints: a retry has another one); its labels (LABEL_FIELDS) are left out of the
 * version 2 fingerprint. Stored fingerprints are compared in their own version, so the canonical
 * form of an operation never changes once released.
 */
export function envelopeOf(scope: OutcomeScope, key: string, canonicalRequest: CanonicalRequest): IdempotencyEnvelope {
  return { scope, key, ...requestFingerprints(canonicalRequest) };
}

/**
 * The one replay rule of every keyed write. No stored outcome → "fresh" (plan the write). Same
 * fingerprint (and customer, when the request names one) → "replay" the stored response.
 * Otherwise the request reuses the key for something else: another customer →
 * transaction_conflict; same customer, different parameters → `onMismatch` (idempotency_conflict
 * unless the operation has a more precise code, as settlements do).
 */
export function replayDecision(
  stored: StoredOutcome | null,
  request: ComparedFingerprints & { readonly customerId: string | null },
  onMismatch: () => never = () => {
    throw new BillingError("idempotency_conflict");
  },
): "fresh" | "replay" {
  if (stored === null) return "fresh";
  if (request.customerId !== null && stored.customerId !== request.customerId) throw new BillingError("transaction_conflict");
  if (!sameRequest(stored.requestFingerprint, request)) return onMismatch();
  return "replay";
}

/**
 * A settlement's canonical request: what decides whether a repeat is the same settlement. For
 * Consume that is the amount charged (the frozen amount when actual_amount is unset), whatever
 * allow_overage says; Unfreeze has nothing else. Migration 0008 computed the version 1 fingerprints
 * in SQL for settlements made before the envelope: they replay through legacyFingerprint.
 */
export const consumeEnvelope = (transactionId: string, actualAmount: bigint): IdempotencyEnvelope =>
  envelopeOf("SETTLE", transactionId, { op: "CONSUME", transactionId, actualAmount });

export const unfreezeEnvelope = (transactionId: string): IdempotencyEnvelope =>
  envelopeOf("SETTLE", transactionId, { op: "UNFREEZE", transactionId });
