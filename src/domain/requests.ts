import type { Metadata } from "./types.js";
import type { AutoSettlement } from "./validation.js";

/** The five write requests as the transports parse them: normalized, validated, bigint money. */

export interface DepositRequest {
  readonly projectId: bigint;
  /** The caller's key, recorded on the ledger entry; not part of the request's fingerprint. */
  readonly apiKeyId: bigint | null;
  readonly customerId: string;
  readonly amount: bigint;
  readonly idempotencyKey: string | null;
  readonly creditType: string;
  readonly source: string;
  readonly startsAtMs: number | null;
  readonly expiresAtMs: number | null;
  readonly name: string;
  readonly email: string;
  readonly description: string;
  readonly metadata: Metadata;
}

/** Deduct (and the common part of Freeze). */
export interface SpendRequest {
  readonly projectId: bigint;
  /** The caller's key, recorded on the transaction and its entries; not part of the fingerprint. */
  readonly apiKeyId: bigint | null;
  readonly customerId: string;
  readonly transactionId: string;
  readonly amount: bigint;
  readonly creditTypes: readonly string[];
  readonly businessType: number;
  readonly description: string;
  readonly metadata: Metadata;
  /** The call's request id, stored with the transaction; not part of the fingerprint. */
  readonly requestId?: string;
}

export interface FreezeRequest extends SpendRequest {
  readonly autoSettlement: AutoSettlement | null;
}

/** Unfreeze (and the common part of Consume). */
export interface SettleRequest {
  readonly projectId: bigint;
  /** The caller's key, recorded on the settlement's ledger entries; null for the sweeper. */
  readonly apiKeyId: bigint | null;
  readonly transactionId: string;
  /** Optional scope check: the hold must belong to this customer. */
  readonly customerId: string | null;
}

export interface ConsumeRequest extends SettleRequest {
  /** null: the whole frozen amount. */
  readonly actualAmount: bigint | null;
  readonly allowOverage: boolean;
}

/** Set by the sweeper: entries are marked automatic, and a busy customer is skipped, not awaited. */
export interface SettleMode {
  readonly automatic: boolean;
}
