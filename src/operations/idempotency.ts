import { BillingError } from "../errors/billing-error.js";
import type { StoredOutcome } from "../domain/idempotency.js";
import { decodeJson } from "../store/json-codec.js";

export type { StoredOutcome };

/**
 * The one idempotency rule of every keyed write: same key and same request → the original
 * answer flagged as a replay; another customer → transaction_conflict; same customer but
 * different parameters → idempotency_conflict.
 */
export function replayStored<T extends { isIdempotentReplay: boolean }>(
  stored: StoredOutcome,
  customerId: string,
  requestFingerprint: string,
): T {
  if (stored.customerId !== customerId) throw new BillingError("transaction_conflict");
  if (stored.requestFingerprint !== requestFingerprint) throw new BillingError("idempotency_conflict");
  return { ...decodeJson<T>(stored.response), isIdempotentReplay: true };
}
