import { sql } from "drizzle-orm";
import {
  type AnyMySqlColumn,
  bigint,
  boolean,
  char,
  check,
  datetime,
  index,
  int,
  json,
  mediumtext,
  mysqlTable,
  text,
  uniqueIndex,
  varchar,
} from "drizzle-orm/mysql-core";
import { OUTCOME_SCOPES } from "../domain/idempotency.js";
import { EVENT_TYPES } from "../domain/events.js";
import { AUTO_ACTIONS, BUSINESS_TYPE_NAMES, OPERATIONS, TRANSACTION_KINDS, TRANSACTION_STATUSES } from "../domain/types.js";

// Conventions: money is BIGINT read as bigint; surrogate ids are BIGINT AUTO_INCREMENT read as
// bigint; server times are DATETIME(3) in UTC; account validity bounds are BIGINT epoch
// milliseconds so that every valid protobuf Timestamp (years 1-9999) fits, which DATETIME does not.
// Metadata JSON is MEDIUMTEXT: 32 values of 1024 UTF-16 code units can take 6 bytes each once
// JSON-escaped ("\u0001"), about 210 KB in all, beyond TEXT's 65,535 bytes.
// There are no foreign keys: every write already checks its references under lock, and FKs do not
// survive sharding by (project, customer) on Vitess.

/** A closed value set as SQL literals, for the CHECK constraints that hold a column to it. */
const valuesOf = (values: readonly string[]) => sql.raw(values.map((v) => `'${v}'`).join(", "));

/** A business type is its index in BUSINESS_TYPE_NAMES. */
const businessTypeKnown = (column: AnyMySqlColumn) => sql`${column} BETWEEN 0 AND ${sql.raw(String(BUSINESS_TYPE_NAMES.length - 1))}`;

const id = () => bigint("id", { mode: "bigint", unsigned: true }).autoincrement().primaryKey();
const ref = (name: string) => bigint(name, { mode: "bigint", unsigned: true }).notNull();
const money = (name: string) => bigint(name, { mode: "bigint" }).notNull().default(sql`0`);
const createdAt = () => datetime("created_at", { mode: "date", fsp: 3 }).notNull();

/** A tenant: every other row belongs to one. Rate and burst size its keys' token buckets. */
export const projects = mysqlTable(
  "projects",
  {
    id: id(),
    name: varchar("name", { length: 128 }).notNull(),
    mode: varchar("mode", { length: 8 }).notNull().default("test"),
    /** Calls per second per key; 0 means unlimited. */
    ratePerSecond: int("rate_per_second", { unsigned: true }).notNull().default(5000),
    burst: int("burst", { unsigned: true }).notNull().default(10000),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("projects_name_uq").on(t.name), check("projects_mode_known", sql`${t.mode} IN ('live', 'test')`)],
);

/** API keys: only the SHA-256 of a key is stored, with a display prefix. */
export const apiKeys = mysqlTable(
  "api_keys",
  {
    id: id(),
    projectId: ref("project_id"),
    keyHash: char("key_hash", { length: 64 }).notNull(),
    prefix: varchar("prefix", { length: 32 }).notNull(),
    label: varchar("label", { length: 128 }).notNull().default(""),
    scope: varchar("scope", { length: 8 }).notNull(),
    createdAt: createdAt(),
    lastUsedAt: datetime("last_used_at", { mode: "date", fsp: 3 }),
    revokedAt: datetime("revoked_at", { mode: "date", fsp: 3 }),
  },
  (t) => [
    uniqueIndex("api_keys_hash_uq").on(t.keyHash),
    uniqueIndex("api_keys_prefix_uq").on(t.prefix),
    index("api_keys_project_idx").on(t.projectId),
    check("api_keys_scope_known", sql`${t.scope} IN ('read', 'write')`),
  ],
);

export const customers = mysqlTable(
  "customers",
  {
    id: id(),
    projectId: ref("project_id"),
    customerId: varchar("customer_id", { length: 128 }).notNull(),
    name: varchar("name", { length: 255 }).notNull().default(""),
    email: varchar("email", { length: 255 }).notNull().default(""),
    metadata: mediumtext("metadata").notNull(),
    createdAt: createdAt(),
    /**
     * The ledger's position of the customer: its last entry's sequence and the balance that entry
     * left (balance_after), written by every write under the customer's lock.
     */
    ledgerSequence: bigint("ledger_sequence", { mode: "bigint" }).notNull().default(sql`0`),
    ledgerTotal: bigint("ledger_total", { mode: "bigint" }).notNull().default(sql`0`),
    ledgerUsed: bigint("ledger_used", { mode: "bigint" }).notNull().default(sql`0`),
    ledgerFrozen: bigint("ledger_frozen", { mode: "bigint" }).notNull().default(sql`0`),
    /**
     * Whether the customer has balance alerts, kept under its lock by the alert calls: a write's
     * prefetch reads it with the lock, and reads the alerts only for a customer that has any.
     */
    hasAlerts: boolean("has_alerts").notNull().default(false),
    // The columns compare byte for byte (0002); the console searches names and emails in any case
    // through these lower-cased copies, kept by the database and indexed.
    nameSearch: varchar("name_search", { length: 255 }).generatedAlwaysAs(sql`LOWER(\`name\`)`, { mode: "stored" }),
    emailSearch: varchar("email_search", { length: 255 }).generatedAlwaysAs(sql`LOWER(\`email\`)`, { mode: "stored" }),
  },
  (t) => [
    uniqueIndex("customers_project_customer_uq").on(t.projectId, t.customerId),
    index("customers_name_search_idx").on(t.projectId, t.nameSearch),
    index("customers_email_search_idx").on(t.projectId, t.emailSearch),
  ],
);

export const accounts = mysqlTable(
  "accounts",
  {
    id: id(),
    projectId: ref("project_id"),
    customerPk: ref("customer_pk"),
    creditType: varchar("credit_type", { length: 64 }).notNull(),
    source: varchar("source", { length: 64 }).notNull(),
    startsAtMs: bigint("starts_at_ms", { mode: "number" }).notNull(),
    expiresAtMs: bigint("expires_at_ms", { mode: "number" }).notNull(),
    total: money("total"),
    used: money("used"),
    frozen: money("frozen"),
    expiryRecorded: boolean("expiry_recorded").notNull().default(false),
    // Whether the sweeper has re-decided the customer's balance alerts since the account started
    // (0019). A deposit into an account that has started sets it; a later start leaves it to the
    // sweeper, as an expiry is. FALSE by default, so an account an older build makes is looked at once.
    startRecorded: boolean("start_recorded").notNull().default(false),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("accounts_key_uq").on(t.projectId, t.customerPk, t.creditType, t.source, t.startsAtMs, t.expiresAtMs),
    // Spending order of a customer's accounts whose expiry is not recorded (0022): the ones
    // expired and not yet recorded, then the ACTIVE ones soonest expiring first; its past (expiry
    // recorded) after them, never read on the way. Also how inactiveBalancesSql finds the first kind.
    index("accounts_spending_order_idx").on(t.projectId, t.customerPk, t.expiryRecorded, t.expiresAtMs, t.createdAt),
    // The spending order before 0022, which read a customer's past first. Still there for the
    // builds before it that an upgrade leaves running (their statements name it): a later
    // migration drops it.
    index("accounts_spending_idx").on(t.projectId, t.customerPk, t.expiresAtMs, t.createdAt),
    index("accounts_expiry_idx").on(t.expiryRecorded, t.expiresAtMs),
    index("accounts_start_idx").on(t.startRecorded, t.startsAtMs),
    // A customer's accounts not started yet (inactiveBalancesSql), never its ACTIVE ones or its past.
    index("accounts_pending_idx").on(t.projectId, t.customerPk, t.startsAtMs),
    check("accounts_total_nonneg", sql`${t.total} >= 0`),
    check("accounts_used_nonneg", sql`${t.used} >= 0`),
    check("accounts_frozen_nonneg", sql`${t.frozen} >= 0`),
    check("accounts_within_total", sql`${t.used} + ${t.frozen} <= ${t.total}`),
  ],
);

/** Deduct and Freeze transactions; a Freeze is a hold settled once by Consume or Unfreeze. */
export const transactions = mysqlTable(
  "transactions",
  {
    id: id(),
    projectId: ref("project_id"),
    transactionId: varchar("transaction_id", { length: 128 }).notNull(),
    customerPk: ref("customer_pk"),
    kind: varchar("kind", { length: 16 }).notNull(),
    status: varchar("status", { length: 16 }).notNull(),
    amount: money("amount"),
    consumedAmount: money("consumed_amount"),
    returnedAmount: money("returned_amount"),
    overageAmount: money("overage_amount"),
    creditTypes: text("credit_types").notNull(),
    businessType: int("business_type").notNull().default(0),
    description: varchar("description", { length: 1024 }).notNull().default(""),
    metadata: mediumtext("metadata").notNull(),
    autoAction: varchar("auto_action", { length: 16 }),
    autoAt: datetime("auto_at", { mode: "date", fsp: 3 }),
    settledAutomatically: boolean("settled_automatically").notNull().default(false),
    createdAt: createdAt(),
    settledAt: datetime("settled_at", { mode: "date", fsp: 3 }),
    /** The key that made the Deduct or Freeze (the settling key is on the ledger entries). */
    apiKeyId: bigint("api_key_id", { mode: "bigint", unsigned: true }),
    /** x-request-id of the call that made it, so support can find its log lines (NULL before 0013). */
    requestId: varchar("request_id", { length: 128 }),
    /** What refunds gave back of the charge, in all (= Σ its REFUND entries). */
    refundedAmount: money("refunded_amount"),
  },
  (t) => [
    uniqueIndex("transactions_project_tx_uq").on(t.projectId, t.transactionId),
    index("transactions_due_idx").on(t.status, t.autoAt),
    // A customer's open holds (the console).
    index("transactions_customer_status_idx").on(t.customerPk, t.status),
    check(
      "transactions_amounts_nonneg",
      sql`${t.amount} > 0 AND ${t.consumedAmount} >= 0 AND ${t.returnedAmount} >= 0 AND ${t.overageAmount} >= 0`,
    ),
    check("transactions_kind_valid", sql`${t.kind} IN (${valuesOf(TRANSACTION_KINDS)})`),
    check("transactions_status_valid", sql`${t.status} IN (${valuesOf(TRANSACTION_STATUSES)})`),
    check("transactions_auto_action_valid", sql`${t.autoAction} IS NULL OR ${t.autoAction} IN (${valuesOf(AUTO_ACTIONS)})`),
    check("transactions_business_type_known", businessTypeKnown(t.businessType)),
    // Refunds never give back more than the charge took: a Deduct's amount, a consumed Freeze's
    // actual amount (overage included; 0 until consumed).
    check(
      "transactions_refunded_within_charge",
      sql`${t.refundedAmount} >= 0 AND ${t.refundedAmount} <= CASE WHEN ${t.kind} = 'DEDUCT' THEN ${t.amount} ELSE ${t.consumedAmount} END`,
    ),
  ],
);

/** How a transaction was spread over accounts, in allocation order. */
export const allocations = mysqlTable(
  "allocations",
  {
    id: id(),
    projectId: ref("project_id"),
    transactionPk: ref("transaction_pk"),
    seq: int("seq").notNull(),
    accountId: ref("account_id"),
    amount: money("amount"),
  },
  (t) => [uniqueIndex("allocations_tx_seq_uq").on(t.transactionPk, t.seq), check("allocations_amount_pos", sql`${t.amount} > 0`)],
);

/** Append-only: triggers in the migrations refuse every UPDATE and DELETE. */
export const ledgerEntries = mysqlTable(
  "ledger_entries",
  {
    id: id(),
    projectId: ref("project_id"),
    customerPk: ref("customer_pk"),
    accountId: ref("account_id"),
    operation: varchar("operation", { length: 16 }).notNull(),
    amount: bigint("amount", { mode: "bigint" }).notNull(),
    creditType: varchar("credit_type", { length: 64 }).notNull(),
    source: varchar("source", { length: 64 }).notNull(),
    transactionPk: bigint("transaction_pk", { mode: "bigint", unsigned: true }),
    transactionId: varchar("transaction_id", { length: 128 }).notNull().default(""),
    idempotencyKey: varchar("idempotency_key", { length: 128 }).notNull().default(""),
    businessType: int("business_type").notNull().default(0),
    description: varchar("description", { length: 1024 }).notNull().default(""),
    metadata: mediumtext("metadata").notNull(),
    automatic: boolean("automatic").notNull().default(false),
    overage: boolean("overage").notNull().default(false),
    createdAt: createdAt(),
    /** The key that made the entry; NULL for entries the service writes itself (sweeper, expiry). */
    apiKeyId: bigint("api_key_id", { mode: "bigint", unsigned: true }),
    /** Position in the customer's ledger: 1, 2, … gapless, in commit order. */
    sequence: bigint("sequence", { mode: "bigint" }).notNull(),
    /** The customer's ledger balance after this entry (docs/architecture.md: balance_after). */
    balanceTotal: bigint("balance_total", { mode: "bigint" }).notNull(),
    balanceUsed: bigint("balance_used", { mode: "bigint" }).notNull(),
    balanceFrozen: bigint("balance_frozen", { mode: "bigint" }).notNull(),
    /** A REFUND entry: the charge it gives credits back from. */
    reversesTransactionId: varchar("reverses_transaction_id", { length: 128 }),
    /** A VOID entry: the DEPOSIT entry whose credits it removes. */
    reversesRecordId: bigint("reverses_record_id", { mode: "bigint", unsigned: true }),
  },
  (t) => [
    uniqueIndex("ledger_customer_sequence_uq").on(t.customerPk, t.sequence),
    // The index the listings need (a customer's entries, newest first), and a refund's (the
    // entries of its charge, per account: what each gave and what earlier refunds gave back).
    // verify groups the whole ledger in one scan instead.
    index("ledger_customer_idx").on(t.projectId, t.customerPk, t.id),
    index("ledger_transaction_idx").on(t.transactionPk),
    // A void's deposit: what earlier voids removed of it, without reading the customer's later
    // ledger (an old deposit's void read every entry after it, holding the customer's lock).
    index("ledger_void_idx").on(t.reversesRecordId),
    // An expiry records what was left, even nothing: it removes the account from balance_after.
    check("ledger_amount_pos", sql`${t.amount} > 0 OR ${t.operation} = 'EXPIRE'`),
    check("ledger_operation_valid", sql`${t.operation} IN (${valuesOf(OPERATIONS)})`),
    check("ledger_business_type_known", businessTypeKnown(t.businessType)),
    // Every reversal names what it reverses, and nothing else does. The ledger equations:
    // total = Σ DEPOSIT − Σ VOID; used = Σ DEDUCT + Σ CONSUME − Σ REFUND.
    check("ledger_refund_reverses_charge", sql`(${t.operation} = 'REFUND') = (${t.reversesTransactionId} IS NOT NULL)`),
    check("ledger_void_reverses_deposit", sql`(${t.operation} = 'VOID') = (${t.reversesRecordId} IS NOT NULL)`),
  ],
);

/**
 * The one idempotency envelope: what every keyed write (Deposit, Deduct, Freeze, Consume,
 * Unfreeze, Grant and Revoke capacity, Refund, VoidDeposit) answered, under its scope and key.
 * DEPOSIT and SLOT are keyed by idempotency_key, SPEND (Deduct, Freeze) and SETTLE (Consume,
 * Unfreeze) by transaction_id, REFUND by refund_id, VOID by void_id; the fingerprint is of the
 * canonical request (domain/idempotency.ts), the response is replayed byte for byte.
 */
export const outcomes = mysqlTable(
  "idempotency_outcomes",
  {
    id: id(),
    projectId: ref("project_id"),
    scope: varchar("scope", { length: 16 }).notNull(),
    idempotencyKey: varchar("idempotency_key", { length: 128 }).notNull(),
    customerPk: ref("customer_pk"),
    requestFingerprint: char("request_fingerprint", { length: 64 }).notNull(),
    response: mediumtext("response").notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("idempotency_outcomes_key_uq").on(t.projectId, t.scope, t.idempotencyKey),
    check("idempotency_outcomes_scope_valid", sql`${t.scope} IN (${valuesOf(OUTCOME_SCOPES)})`),
  ],
);

// Slots: capacity pools, the holdings claimed from them, and their append-only history.

/** One pool of capacity per (customer, wallet, source); `in_use` is what holdings take from it. */
export const slotPools = mysqlTable(
  "slot_pools",
  {
    id: id(),
    projectId: ref("project_id"),
    customerPk: ref("customer_pk"),
    wallet: varchar("wallet", { length: 64 }).notNull(),
    source: varchar("source", { length: 64 }).notNull(),
    capacity: money("capacity"),
    inUse: money("in_use"),
    status: varchar("status", { length: 16 }).notNull().default("ACTIVE"),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("slot_pools_key_uq").on(t.projectId, t.customerPk, t.wallet, t.source),
    check("slot_pools_in_use_nonneg", sql`${t.inUse} >= 0`),
    check("slot_pools_within_capacity", sql`${t.inUse} <= ${t.capacity}`),
    check("slot_pools_status", sql`${t.status} IN ('ACTIVE', 'SUSPENDED')`),
  ],
);

/**
 * A claim of `amount` from one pool for one resource. `held_resource_id` equals `resource_id`
 * while the holding is held and is NULL once released, so the UNIQUE index allows one live
 * holding per (customer, wallet, resource) and any number of released ones.
 */
export const slotHoldings = mysqlTable(
  "slot_holdings",
  {
    id: id(),
    projectId: ref("project_id"),
    customerPk: ref("customer_pk"),
    poolId: ref("pool_id"),
    wallet: varchar("wallet", { length: 64 }).notNull(),
    resourceId: varchar("resource_id", { length: 128 }).notNull(),
    heldResourceId: varchar("held_resource_id", { length: 128 }),
    amount: money("amount"),
    createdAt: createdAt(),
    releasedAt: datetime("released_at", { mode: "date", fsp: 3 }),
  },
  (t) => [
    uniqueIndex("slot_holdings_held_uq").on(t.projectId, t.customerPk, t.wallet, t.heldResourceId),
    index("slot_holdings_resource_idx").on(t.projectId, t.customerPk, t.wallet, t.resourceId, t.id),
    index("slot_holdings_pool_idx").on(t.poolId),
    check("slot_holdings_amount_pos", sql`${t.amount} > 0`),
    check(
      "slot_holdings_held_is_resource",
      sql`${t.heldResourceId} IS NULL OR (${t.heldResourceId} = ${t.resourceId} AND ${t.releasedAt} IS NULL)`,
    ),
  ],
);

/** Append-only: triggers in the migrations refuse every UPDATE and DELETE. */
export const slotEvents = mysqlTable(
  "slot_events",
  {
    id: id(),
    projectId: ref("project_id"),
    customerPk: ref("customer_pk"),
    poolId: ref("pool_id"),
    holdingId: bigint("holding_id", { mode: "bigint", unsigned: true }),
    type: varchar("type", { length: 16 }).notNull(),
    wallet: varchar("wallet", { length: 64 }).notNull(),
    source: varchar("source", { length: 64 }).notNull(),
    amount: bigint("amount", { mode: "bigint" }).notNull(),
    resourceId: varchar("resource_id", { length: 128 }),
    description: varchar("description", { length: 1024 }),
    idempotencyKey: varchar("idempotency_key", { length: 128 }),
    createdAt: createdAt(),
    /** The key that made the change. */
    apiKeyId: bigint("api_key_id", { mode: "bigint", unsigned: true }),
  },
  (t) => [
    index("slot_events_customer_idx").on(t.projectId, t.customerPk, t.id),
    index("slot_events_pool_idx").on(t.poolId),
    check("slot_events_amount_pos", sql`${t.amount} > 0`),
    check("slot_events_type", sql`${t.type} IN ('GRANT_CAPACITY', 'REVOKE_CAPACITY', 'CLAIM', 'RELEASE')`),
  ],
);

// Entitlements: one current value per (customer, feature_key) and its append-only history.

/** Validity bounds are epoch milliseconds (NULL: unbounded), as the accounts' are. */
export const entitlements = mysqlTable(
  "entitlements",
  {
    id: id(),
    projectId: ref("project_id"),
    customerPk: ref("customer_pk"),
    featureKey: varchar("feature_key", { length: 128 }).notNull(),
    value: text("value").notNull(),
    validFromMs: bigint("valid_from_ms", { mode: "number" }),
    validUntilMs: bigint("valid_until_ms", { mode: "number" }),
    source: varchar("source", { length: 64 }),
    description: varchar("description", { length: 1024 }),
    metadata: mediumtext("metadata"),
    createdAt: createdAt(),
    updatedAt: datetime("updated_at", { mode: "date", fsp: 3 }).notNull(),
  },
  (t) => [
    uniqueIndex("entitlements_key_uq").on(t.projectId, t.customerPk, t.featureKey),
    check("entitlements_window", sql`${t.validFromMs} IS NULL OR ${t.validUntilMs} IS NULL OR ${t.validUntilMs} > ${t.validFromMs}`),
  ],
);

/** Append-only: triggers in the migrations refuse every UPDATE and DELETE. */
export const entitlementEvents = mysqlTable(
  "entitlement_events",
  {
    id: id(),
    projectId: ref("project_id"),
    customerPk: ref("customer_pk"),
    entitlementId: ref("entitlement_id"),
    featureKey: varchar("feature_key", { length: 128 }).notNull(),
    type: varchar("type", { length: 16 }).notNull(),
    oldValue: text("old_value"),
    newValue: text("new_value"),
    source: varchar("source", { length: 64 }),
    description: varchar("description", { length: 1024 }),
    createdAt: createdAt(),
    /** The key that made the change. */
    apiKeyId: bigint("api_key_id", { mode: "bigint", unsigned: true }),
  },
  (t) => [
    index("entitlement_events_customer_idx").on(t.projectId, t.customerPk, t.id),
    check("entitlement_events_type", sql`${t.type} IN ('SET', 'REMOVE')`),
  ],
);

/**
 * Console sign-ins: the cookie holds a random session id, this table only its SHA-256, the key
 * that signed in (checked again on every request, so a revoked key ends its sessions) and when
 * the session ends.
 */
export const consoleSessions = mysqlTable(
  "console_sessions",
  {
    idHash: char("id_hash", { length: 64 }).primaryKey(),
    projectId: ref("project_id"),
    apiKeyId: ref("api_key_id"),
    createdAt: createdAt(),
    expiresAt: datetime("expires_at", { mode: "date", fsp: 3 }).notNull(),
  },
  (t) => [index("console_sessions_expiry_idx").on(t.expiresAt), index("console_sessions_key_idx").on(t.apiKeyId)],
);

// Events out (docs/events.md): the outbox, the feed's singletons and the balance alerts.

/**
 * The transactional outbox: one row per committed write (and per alert crossing), inserted in the
 * write's own transaction, so an event exists if and only if its write committed. `position` is
 * the commit order, stamped after commit by the one elected stamper (store/event-feed-store.ts):
 * readers page by it, never by `id`, whose AUTO_INCREMENT order is not commit order (a lower id
 * can commit later; on Galera ids step by the node count). NULL until stamped.
 */
export const events = mysqlTable(
  "events",
  {
    id: id(),
    /** The deployment id, a dash, a random suffix: unique beyond this database (NATS dedup). */
    eventId: varchar("event_id", { length: 100 }).notNull(),
    projectId: ref("project_id"),
    customerId: varchar("customer_id", { length: 128 }),
    type: varchar("type", { length: 40 }).notNull(),
    transactionId: varchar("transaction_id", { length: 128 }),
    /** entries (with their sequences), balance_after and the type's own data (domain/events.ts). */
    payload: json("payload").notNull(),
    createdAt: createdAt(),
    position: bigint("position", { mode: "bigint", unsigned: true }),
    /**
     * The commit order within the project, stamped with `position`: what a project's readers page
     * by and their cursors hold, so a cursor says nothing of other projects' events.
     */
    projectPosition: bigint("project_position", { mode: "bigint", unsigned: true }),
  },
  (t) => [
    uniqueIndex("events_event_id_uq").on(t.eventId),
    uniqueIndex("events_position_uq").on(t.position),
    // A project's feed, in commit order (WatchEvents, GET /v1/events).
    uniqueIndex("events_project_position_uq").on(t.projectId, t.projectPosition),
    // One customer's or one type's part of it, in the same order: read from an old cursor, the
    // project's index alone reads every other event on the way.
    index("events_customer_idx").on(t.projectId, t.customerId, t.projectPosition),
    index("events_type_idx").on(t.projectId, t.type, t.projectPosition),
    check("events_type_known", sql`${t.type} IN (${valuesOf(EVENT_TYPES)})`),
  ],
);

/**
 * How far each project's feed is pruned: every event of the project up to `pruned_through`
 * (a project position) is gone, so an older cursor is cursor_expired.
 */
export const eventPruneMarks = mysqlTable("event_prune_marks", {
  projectId: bigint("project_id", { mode: "bigint", unsigned: true }).primaryKey(),
  prunedThrough: bigint("pruned_through", { mode: "bigint", unsigned: true }).notNull(),
});

/** Named values of this database: `deployment_id` (made at first start), `events_pruned_through` (global positions). */
export const settings = mysqlTable("settings", {
  name: varchar("name", { length: 64 }).primaryKey(),
  value: varchar("value", { length: 255 }).notNull(),
});

/**
 * Leases (leases-store.ts): the start's one-time work (migrations, the first key) and the elected
 * singletons (the event stamper, the NATS publisher), a committed row with an owner and an expiry,
 * read against the database's clock. Not GET_LOCK: it holds only on one Galera node.
 */
export const leases = mysqlTable("leases", {
  name: varchar("name", { length: 64 }).primaryKey(),
  owner: varchar("owner", { length: 128 }).notNull(),
  expiresAt: datetime("expires_at", { mode: "date", fsp: 3 }).notNull(),
});

/** How far each publisher (the NATS one) has sent the feed: every position up to `position` is sent. */
export const eventPublishers = mysqlTable("event_publishers", {
  name: varchar("name", { length: 64 }).primaryKey(),
  position: bigint("position", { mode: "bigint", unsigned: true }).notNull(),
  /**
   * The event it sent last, by id and position (null before they were kept; the position differs
   * from `position` when an older build moved that alone): a feed restored under the publisher
   * shows as another event there, or none.
   */
  lastEventId: varchar("last_event_id", { length: 100 }),
  lastEventPosition: bigint("last_event_position", { mode: "bigint", unsigned: true }),
  /** Where it sends them: the stream and subject prefix (null before it was kept). */
  target: varchar("target", { length: 300 }),
  updatedAt: datetime("updated_at", { mode: "date", fsp: 3 }).notNull(),
});

/**
 * A low-balance alert: one per (project, customer, credit type or '' for all types). `state`
 * is what the writes decide under the customer's lock: armed → low → depleted, and back to armed
 * when the balance recovers (domain/balance-alerts.ts).
 */
export const balanceAlerts = mysqlTable(
  "balance_alerts",
  {
    id: id(),
    projectId: ref("project_id"),
    customerId: varchar("customer_id", { length: 128 }).notNull(),
    /** '' = every credit type (a NULL would not be unique). */
    creditType: varchar("credit_type", { length: 64 }).notNull().default(""),
    threshold: bigint("threshold", { mode: "bigint" }).notNull(),
    state: varchar("state", { length: 16 }).notNull().default("armed"),
    createdAt: createdAt(),
    updatedAt: datetime("updated_at", { mode: "date", fsp: 3 }).notNull(),
  },
  (t) => [
    uniqueIndex("balance_alerts_key_uq").on(t.projectId, t.customerId, t.creditType),
    check("balance_alerts_threshold_pos", sql`${t.threshold} > 0`),
    check("balance_alerts_state_known", sql`${t.state} IN ('armed', 'low', 'depleted')`),
  ],
);
