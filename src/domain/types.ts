/** Plain domain values shared by the operations; no storage or transport types here. */

export type AccountStatus = "ACTIVE" | "PENDING" | "EXPIRED";
// The closed value sets stored in the database: rows read back are parsed against these lists,
// and CHECK constraints hold the columns to them.
export const TRANSACTION_KINDS = ["DEDUCT", "FREEZE"] as const;
export const TRANSACTION_STATUSES = ["DEDUCTED", "FROZEN", "CONSUMED", "UNFROZEN"] as const;
export const OPERATIONS = ["DEPOSIT", "DEDUCT", "FREEZE", "CONSUME", "UNFREEZE", "EXPIRE", "REFUND", "VOID"] as const;
export const AUTO_ACTIONS = ["UNFREEZE", "CONSUME"] as const;
/** What a spend is for, stored as its index here: the proto's BusinessType numbers, HTTP's names. */
export const BUSINESS_TYPE_NAMES = [
  "UNDEFINED",
  "TASK",
  "ORDER",
  "MEMBERSHIP",
  "SUBSCRIPTION",
  "FREE_TRIAL",
  "ADMIN_GRANT",
  "TOKEN_USAGE",
] as const;
export type TransactionKind = (typeof TRANSACTION_KINDS)[number];
export type TransactionStatus = (typeof TRANSACTION_STATUSES)[number];
export type Operation = (typeof OPERATIONS)[number];
export type AutoAction = (typeof AUTO_ACTIONS)[number];
/** Any JSON value, as JSON.parse returns it. */
export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };
/**
 * Caller-defined facts, stored as given. gRPC sends string values only (map<string, string>);
 * HTTP may send any JSON value, which gRPC then shows as its JSON text.
 */
export type Metadata = Readonly<Record<string, JsonValue>>;

/** An account as read under lock. Times are epoch milliseconds. */
export interface AccountSnapshot {
  readonly id: bigint;
  readonly creditType: string;
  readonly source: string;
  readonly startsAtMs: number;
  readonly expiresAtMs: number;
  readonly total: bigint;
  readonly used: bigint;
  readonly frozen: bigint;
  readonly createdAtMs: number;
  /**
   * Its leftover is on the ledger as EXPIRE (`accounts.expiry_recorded`): expired for good, on
   * whatever clock reads it. Without this an instance whose clock runs behind the one that
   * recorded the expiry would still spend the credits, and they would count twice.
   */
  readonly expiryRecorded: boolean;
}

export interface Balance {
  readonly total: bigint;
  readonly used: bigint;
  readonly frozen: bigint;
  readonly available: bigint;
}

/** What one operation did to one account. */
export interface AllocationLine {
  readonly accountId: bigint;
  readonly creditType: string;
  readonly source: string;
  readonly amount: bigint;
}

export interface AccountView extends Balance {
  readonly id: bigint;
  readonly creditType: string;
  readonly source: string;
  /** null: no bound. */
  readonly startsAtMs: number | null;
  readonly expiresAtMs: number | null;
  readonly status: AccountStatus;
}
