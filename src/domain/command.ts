import { envelopeOf, type IdempotencyEnvelope, type OutcomeScope } from "./idempotency.js";

/**
 * Fields of a request that say who made it and in which call (its project, the caller's API key,
 * the call's request id), recorded for audit but never part of what it asks: the same write
 * retried with another key or in another call is the same write.
 */
export const AUDIT_FIELDS = ["projectId", "apiKeyId", "requestId"] as const;
const AUDIT: ReadonlySet<string> = new Set(AUDIT_FIELDS);

/**
 * A write as the pipeline carries it: the request as the transports parsed it (audit fields
 * included, for the rows it writes) and its idempotency envelope, built once when the write is
 * made (domain/plans/write-list.ts) and passed to its plan however often the plan is made again.
 */
export interface Command<R, E> {
  readonly request: R;
  readonly envelope: E;
}

/** What a request asks: the request without its audit fields, and without `keyField` when the key is not part of it. */
export function inputOf<R extends object>(request: R, keyField?: keyof R & string): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(request)) {
    if (field !== keyField && !AUDIT.has(field)) input[field] = value;
  }
  return input;
}

/**
 * The envelope of a request fingerprinted whole (a deposit, a Deduct or Freeze): `op` and what it
 * asks (inputOf). Operations that name their canonical fields one by one use envelopeOf directly.
 */
export const wholeRequestEnvelope = <R extends object>(
  scope: OutcomeScope,
  key: string,
  op: string,
  request: R,
  keyField?: keyof R & string,
): IdempotencyEnvelope => envelopeOf(scope, key, { op, ...inputOf(request, keyField) });
