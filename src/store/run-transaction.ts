import { setTimeout as sleep } from "node:timers/promises";
import { BillingError } from "../errors/billing-error.js";
import type { Db } from "./database.js";
import { isConnectionFailure, isDuplicateOn, isOutOfRange, isRetryableConflict } from "./sql-errors.js";

export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

/** Deadlocks and lock-wait timeouts are retried this many times before service_unavailable. */
export const TRANSACTION_ATTEMPTS_MAX = 5;
const BACKOFF_BASE_MS = 5;

/**
 * Two requests racing for one idempotency key: the loser's INSERT hits the UNIQUE index; a fresh
 * attempt then finds the winner's row and replays or reports the conflict.
 */
export const IDEMPOTENCY_INDEXES = ["transactions_project_tx_uq", "deposit_keys_project_key_uq"] as const;

export interface RetryObserver {
  onRetry?(reason: "deadlock" | "duplicate_key", attempt: number): void;
}

/** Runs `work` in one database transaction, retrying the transient failures with jitter. */
export async function runTransaction<T>(db: Db, work: (tx: Tx) => Promise<T>, observer: RetryObserver = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(work);
    } catch (error) {
      if (error instanceof BillingError) throw error;
      const conflict = isRetryableConflict(error);
      const duplicate = !conflict && isDuplicateOn(error, IDEMPOTENCY_INDEXES);
      if ((conflict || duplicate) && attempt < TRANSACTION_ATTEMPTS_MAX) {
        observer.onRetry?.(conflict ? "deadlock" : "duplicate_key", attempt);
        await sleep(Math.random() * BACKOFF_BASE_MS * 2 ** attempt);
        continue;
      }
      throw translateStoreError(error);
    }
  }
}

/** Storage failures that have a public meaning; anything else stays a bug (server_error). */
export function translateStoreError(error: unknown): unknown {
  if (error instanceof BillingError) return error;
  if (isConnectionFailure(error) || isRetryableConflict(error)) {
    return new BillingError("service_unavailable", undefined, {}, { cause: error });
  }
  if (isOutOfRange(error)) {
    return new BillingError("invalid_argument", "The amount would take an account beyond its limit.", {
      field: "amount",
    }, { cause: error });
  }
  return error;
}

/** Runs a read outside a transaction, with the same translation of storage failures. */
export async function runQuery<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw translateStoreError(error);
  }
}
