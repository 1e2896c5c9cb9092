import { type RequestFingerprints, replayDecision, type StoredOutcome } from "../domain/idempotency.js";
import { decodeJson } from "../store/json-codec.js";

export type { StoredOutcome };

/**
 * The one replay path of every keyed write: the stored answer, flagged as a replay, when the
 * envelope's rule (domain/idempotency.ts: replayDecision) says so; null when the write is fresh.
 */
export function replayOf<T extends { isIdempotentReplay: boolean }>(
  stored: StoredOutcome | null,
  request: RequestFingerprints & { readonly customerId: string | null },
  onMismatch?: () => never,
): T | null {
  if (stored === null || replayDecision(stored, request, onMismatch) === "fresh") return null;
  return { ...decodeJson<T>(stored.response), isIdempotentReplay: true };
}

/** replayOf for a stored outcome known to exist under a fingerprint (slot keys). */
export function replayStored<T extends { isIdempotentReplay: boolean }>(
  stored: StoredOutcome,
  customerId: string,
  fingerprints: RequestFingerprints,
): T {
  const replay = replayOf<T>(stored, { customerId, ...fingerprints });
  if (replay === null) throw new Error("a stored outcome did not replay");
  return replay;
}
