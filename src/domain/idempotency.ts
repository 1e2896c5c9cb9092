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
export interface IdempotencyEnvelope {
  readonly scope: OutcomeScope;
  readonly key: string;
  readonly requestFingerprint: string;
}

/** A request as fingerprinted: the operation's name and the fields that make it what it is. */
export interface CanonicalRequest {
  readonly op: string;
  readonly [field: string]: unknown;
}

/**
 * The envelope of a request. `canonicalRequest` names the operation (`op`) and holds what decides
 * "the same request": everything the caller sent but the key itself when the key is not part of
 * the request (a deposit's), and never who sent it (project, API key) or in which call (its
 * request id, dropped here: a retry has another one). Stored fingerprints are compared as they
 * are, so the canonical form of an operation never changes once released.
 */
export function envelopeOf(scope: OutcomeScope, key: string, canonicalRequest: CanonicalRequest): IdempotencyEnvelope {
  return { scope, key, requestFingerprint: fingerprint({ ...canonicalRequest, requestId: undefined }) };
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
  request: { readonly customerId: string | null; readonly requestFingerprint: string },
  onMismatch: () => never = () => {
    throw new BillingError("idempotency_conflict");
  },
): "fresh" | "replay" {
  if (stored === null) return "fresh";
  if (request.customerId !== null && stored.customerId !== request.customerId) throw new BillingError("transaction_conflict");
  if (stored.requestFingerprint !== request.requestFingerprint) return onMismatch();
  return "replay";
}

/**
 * A settlement's canonical request: what decides whether a repeat is the same settlement. For
 * Consume that is the amount charged (the frozen amount when actual_amount is unset), whatever
 * allow_overage says; Unfreeze has nothing else. Migration 0008 computes the same fingerprints
 * in SQL for settlements made before the envelope: keep the two in step.
 */
export const consumeEnvelope = (transactionId: string, actualAmount: bigint): IdempotencyEnvelope =>
  envelopeOf("SETTLE", transactionId, { op: "CONSUME", transactionId, actualAmount });

export const unfreezeEnvelope = (transactionId: string): IdempotencyEnvelope =>
  envelopeOf("SETTLE", transactionId, { op: "UNFREEZE", transactionId });
