import type { Database } from "../store/database.js";
import type { RetryObserver } from "../store/run-transaction.js";

/** What every operation needs: storage, a clock (injected so tests can pin time), observers. */
export interface BillingContext {
  readonly database: Database;
  readonly now: () => number;
  readonly retries?: RetryObserver;
}
