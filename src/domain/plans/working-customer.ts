import type { AvailableBalances, BalanceAlert } from "../balance-alerts.js";
import type { LedgerPosition } from "../ledger-position.js";
import type { AccountSnapshot, Balance } from "../types.js";
import type { CustomerState } from "./write-list.js";

/**
 * A customer as the list planner (list-plan.ts) moves it: the prefetched state plus what the
 * earlier writes of the list did. Its own module so that the planner's steps (reversal-steps.ts)
 * share it without importing the planner.
 */
export interface WorkingCustomer {
  readonly state: CustomerState;
  before: Balance;
  readonly accounts: Map<bigint, AccountSnapshot>;
  /** A deposit or settlement of the list changed which accounts are spendable, in an order only a full read knows. */
  touched: boolean;
  /**
   * The accounts the list's deposits create (accountKeyText): their ids are known once written, so
   * the customer's next spend, settlement or reversal waits for the next segment, and so does a
   * deposit into one of them. A deposit into another account does not.
   */
  readonly newAccounts: Set<string>;
  /** An account of the list's expiry records. */
  readonly expired: Set<bigint>;
  /** An account of the list's records of starts. */
  readonly started: Set<bigint>;
  /** Its ledger position after the list's writes so far. */
  ledger: LedgerPosition;
  /** False for a customer the prefetch created until a deposit of the list lands on it: the writes before that see no customer. */
  exists: boolean;
  /** Its alerts in the states the list's writes so far left them, and the available balances they watch. */
  alerts: readonly BalanceAlert[];
  available: AvailableBalances;
}
