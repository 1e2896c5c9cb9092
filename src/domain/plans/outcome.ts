import { BillingError } from "../../errors/billing-error.js";
import type { StoredOutcome } from "../idempotency.js";

/**
 * What the plan of one write decides from the state its prefetch read under lock (pure):
 * - `apply`: the changes to write and the answer (ids the database assigns are read back by the apply);
 * - `replay`: the key was used before by this same request: answer the stored outcome;
 * - `answer`: nothing to write, and this is the answer (a resource that holds its slot already, a
 *   holding released already, an entitlement that is not there to remove);
 * - `refused`: a refusal from the catalogue, as a value.
 */
export type WriteOutcome<C, R> =
  | { readonly kind: "apply"; readonly changes: C; readonly result: R }
  | { readonly kind: "replay"; readonly stored: StoredOutcome }
  | { readonly kind: "answer"; readonly result: R }
  | { readonly kind: "refused"; readonly error: BillingError };

/**
 * The plan's outcome, with a refusal the domain rules throw (planClaim, outcomeToReplay, …) turned
 * into a value. Anything else thrown is a bug and stays thrown.
 */
export function refusable<T>(plan: () => T): T | { readonly kind: "refused"; readonly error: BillingError } {
  try {
    return plan();
  } catch (error) {
    if (error instanceof BillingError) return { kind: "refused", error };
    throw error;
  }
}
