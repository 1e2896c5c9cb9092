import type { StoredOutcome } from "../idempotency.js";
import type { Operation } from "../types.js";

/**
 * What a plan decides from the loaded state, the request and the clock (a refusal is a thrown
 * BillingError from the catalogue):
 * - `apply`: the changes to write and the response the caller gets;
 * - `replay`: the key was used before by this same request: answer the stored outcome;
 * - `more`: the loaded state is not enough to decide (a customer with many accounts, an
 *   overage): load the rest and plan again;
 * - `skip`: the sweeper found a row it needs busy elsewhere, and leaves it for a later pass.
 */
export type Planned<C, R> =
  | { readonly kind: "apply"; readonly changes: C; readonly result: R }
  | { readonly kind: "replay"; readonly stored: StoredOutcome }
  | { readonly kind: "more" }
  | { readonly kind: "skip" };

/** One ledger entry to append: what happened to one account. */
export interface LedgerLine {
  readonly operation: Operation;
  readonly accountId: bigint;
  readonly amount: bigint;
  readonly creditType: string;
  readonly source: string;
  readonly overage?: boolean;
}
