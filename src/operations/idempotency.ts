import type { StoredOutcome } from "../domain/idempotency.js";
import { decodeJson } from "../store/json-codec.js";

/**
 * The one replay decoder of every keyed write: the stored answer, byte for byte as it was
 * encoded, flagged as a replay. Whether a stored outcome replays is the plan's decision
 * (domain/idempotency.ts: outcomeToReplay), made under the lock that decides it.
 */
export function replayOf<T extends { isIdempotentReplay: boolean }>(stored: StoredOutcome): T {
  return { ...decodeJson<T>(stored.response), isIdempotentReplay: true };
}
