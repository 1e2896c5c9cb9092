import type { TransactionGate } from "./transaction-gate.js";
import type { Database } from "../store/database.js";
import type { RetryObserver } from "../store/run-transaction.js";
import type { CreditWrite } from "../domain/plans/write-list.js";
import type { CustomerRef } from "../domain/customer-ref.js";
import type { AlertHints } from "./alert-hints.js";
import type { LedgerCounts } from "./ledger-counts.js";
import type { EventFeed } from "./events/event-feed.js";

/** What every operation needs: storage, a clock (injected so tests can pin time), observers. */
export interface BillingContext {
  readonly database: Database;
  readonly now: () => number;
  readonly retries?: RetryObserver;
  /** Per-customer group commit of this instance (operations/group-commit.ts); absent: each write alone. */
  readonly groupCommit?: {
    run(write: CreditWrite, signal?: AbortSignal): Promise<unknown>;
    runBehindCustomer(customer: CustomerRef & { readonly pk: bigint }, write: CreditWrite, signal?: AbortSignal): Promise<unknown> | null;
  };
  /**
   * The call's deadline and cancellation (from the transport): a write whose signal has aborted
   * before its transaction starts is not run.
   */
  readonly signal?: AbortSignal;
  /** Whose call this is (the caller's project id, set by the transport): the transaction gate's line takes turns by it. */
  readonly tenant?: string;
  /** The event feed of this instance (deployment id, commit nudge, watchers' tail); absent: no feed (some tests). */
  readonly events?: EventFeed;
  /** Which customers likely have balance alerts (read in the first round trip); absent: read when found. */
  readonly alertHints?: AlertHints;
  /** The filtered ledger counts this instance made, to count on from; absent: every count reads the whole ledger. */
  readonly ledgerCounts?: LedgerCounts;
  /**
   * false: no transaction spans two customers (GROUP_COMMIT_SIDE_BY_SIDE off, for a sharded
   * database), the sweeper's passes included. Absent: transactions may.
   */
  readonly sideBySide?: boolean;
  /** false: writes append no events (EVENTS_OUTBOX=off, a switch for the bench's comparison only). */
  readonly outbox?: boolean;
  /**
   * Bounds the write transactions run with this context (transaction-gate.ts): the callers'
   * context has one; group commit's own, bounded by GROUP_COMMIT_TRANSACTIONS, has none.
   */
  readonly transactionGate?: TransactionGate;
}
