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

/**
 * Where a keyed write's outcome is stored, and how its request is recognized on a retry: the
 * version 2 fingerprint a new outcome is stored under, computed once when the write is made
 * (domain/command.ts), and the canonical request, whose version 1 fingerprint is computed only
 * when an outcome stored before version 2 is compared with it (sameRequest).
 */
export interface IdempotencyEnvelope {
  readonly scope: OutcomeScope;
  readonly key: string;
  readonly requestFingerprint: string;
  readonly canonicalRequest: CanonicalRequest;
}

/** What a replay decision compares: without the canonical request, a version 1 outcome never matches. */
export type ComparedFingerprints = Pick<IdempotencyEnvelope, "requestFingerprint"> & Partial<Pick<IdempotencyEnvelope, "canonicalRequest">>;

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

/** The version 2 fingerprint: the canonical request without its labels. */
export function requestFingerprint(canonicalRequest: CanonicalRequest): string {
  const moneyFields: Record<string, unknown> = { ...canonicalRequest };
  for (const label of LABEL_FIELDS) delete moneyFields[label];
  return `${FINGERPRINT_V2_PREFIX}${fingerprint(moneyFields).slice(0, FINGERPRINT_LENGTH - FINGERPRINT_V2_PREFIX.length)}`;
}

/** The version 1 fingerprint: the whole canonical request, labels included (what outcomes stored before version 2 hold). */
export const legacyFingerprint = (canonicalRequest: CanonicalRequest): string => fingerprint(canonicalRequest);

/** Whether a stored fingerprint is the request's, in the stored fingerprint's version. */
export function sameRequest(storedFingerprint: string, request: ComparedFingerprints): boolean {
  if (storedFingerprint.startsWith(FINGERPRINT_V2_PREFIX)) return storedFingerprint === request.requestFingerprint;
  return request.canonicalRequest !== undefined && storedFingerprint === legacyFingerprint(request.canonicalRequest);
}

/** A request as fingerprinted: the operation's name and the fields that make it what it is. */
export interface CanonicalRequest {
  readonly op: string;
  readonly [field: string]: unknown;
}

/**
 * The envelope of a request. `canonicalRequest` names the operation (`op`) and holds everything
 * the caller sent but the key itself when the key is not part of the request (a deposit's), and
 * never who sent it or in which call (domain/command.ts: AUDIT_FIELDS); its labels (LABEL_FIELDS)
 * are left out of the version 2 fingerprint. Stored fingerprints are compared in their own
 * version, so the canonical form of an operation never changes once released.
 */
export function envelopeOf(scope: OutcomeScope, key: string, canonicalRequest: CanonicalRequest): IdempotencyEnvelope {
  return { scope, key, requestFingerprint: requestFingerprint(canonicalRequest), canonicalRequest };
}

/**
 * The one replay rule of every keyed write: the stored outcome to replay, or null. No stored
 * outcome → null (plan the write). Same fingerprint (and customer, when the request names one) →
 * the stored outcome, whose response is the answer.
 * Otherwise the request reuses the key for something else: another customer →
 * transaction_conflict; same customer, different parameters → `onMismatch` (idempotency_conflict
 * unless the operation has a more precise code, as settlements do).
 */
export function outcomeToReplay(
  stored: StoredOutcome | null,
  request: ComparedFingerprints & { readonly customerId: string | null },
  onMismatch: () => never = () => {
    throw new BillingError("idempotency_conflict");
  },
): StoredOutcome | null {
  if (stored === null) return null;
  if (request.customerId !== null && stored.customerId !== request.customerId) throw new BillingError("transaction_conflict");
  if (!sameRequest(stored.requestFingerprint, request)) return onMismatch();
  return stored;
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
