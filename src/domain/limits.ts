/** Every limit of the API in one place, each with why it is what it is. */

/** Ids are keys in UNIQUE indexes and log lines: short, printable, no spaces. */
export const ID_LENGTH_MAX = 128;
export const ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;
/** Credit types are compared as written, so one spelling only: lower case. */
export const CREDIT_TYPE_PATTERN = /^[a-z0-9_.-]{1,64}$/;
export const SOURCE_PATTERN = /^[A-Za-z0-9_.:@-]{1,64}$/;
/** A source field as sent: empty is none given (the operation's default), as gRPC's empty string. */
export const SOURCE_OR_NONE_PATTERN = /^[A-Za-z0-9_.:@-]{0,64}$/;
export const CREDIT_TYPES_PER_REQUEST_MAX = 32;
// Text limits count UTF-16 code units (String.length), the unit the parsers enforce; storage
// holds every text within them whatever its UTF-8 size (every metadata JSON column, the
// entitlements' included, is MEDIUMTEXT).
export const DESCRIPTION_LENGTH_MAX = 1024;
export const NAME_LENGTH_MAX = 255;
export const EMAIL_LENGTH_MAX = 255;
export const METADATA_KEYS_MAX = 32;
export const METADATA_KEY_LENGTH_MAX = 64;
export const METADATA_VALUE_LENGTH_MAX = 1024;
/**
 * A JSON body nests at most this deep (the body is level 1, its metadata level 2): labels need a
 * few levels, and every walk over a value stays far from the call stack's limit.
 */
export const JSON_DEPTH_MAX = 32;

/** One operation moves at most 10^15 credits: far beyond any real top-up, far below int64. */
export const AMOUNT_MAX = 10n ** 15n;

/**
 * One call spends from at most this many accounts: it writes a ledger entry and a response
 * detail per account, and 20,000 of them (about 4 MB of response) still fit comfortably in one
 * stored response and in the default max_allowed_packet.
 */
export const ACCOUNTS_PER_CALL_MAX = 20_000;

/**
 * The customer's ledger total: the sum of `total` over its accounts no EXPIRE entry has removed
 * (`balance_after.total` of its last entry). Every balance a response carries (customer, credit
 * type, account, a ledger entry's `balance_after`) sums some of these accounts: an account past
 * its expiry still counts in the ledger until the sweeper records it. Bounding the sum by 2^53 - 1
 * (Number.MAX_SAFE_INTEGER) keeps every balance exact on both transports: an int64 on gRPC and a
 * JSON number on HTTP. Only a deposit raises it, and one beyond it is refused inside its
 * transaction, so no write commits whose answer (or ledger page) could not be sent.
 */
export const CUSTOMER_CREDITS_TOTAL_MAX = 2n ** 53n - 1n;

export const UNFREEZE_AFTER_SECONDS_MAX = 30n * 24n * 3600n;
export const CONSUME_AFTER_SECONDS_MAX = 7n * 24n * 3600n;

/**
 * Writes in one Batch call: one transaction holds every customer it names for all of them, so a
 * bound keeps that lock time (and the response) small; 100 covers the bulk jobs it is for.
 */
export const BATCH_OPERATIONS_MAX = 100;

/**
 * Calls of one customer applied together by group commit (operations/group-commit.ts): one
 * transaction holds the customer's lock for all of them, so a bound keeps its latency (and a
 * retry of each alone, when it fails) short.
 */
export const GROUP_COMMIT_MAX = 32;

/**
 * How long a transaction of group commit (a lone call, a customer's group, a side-by-side list)
 * waits for a customer another transaction holds before it sets that customer's writes aside and
 * goes on with the others (seconds: the least the servers take). Row locks are held for
 * milliseconds, so a list that meets another instance's ordinary transaction still just waits
 * for it; only a lock held this long (a stuck session) is stepped around.
 */
export const GROUP_COMMIT_LOCK_WAIT_S = 1;

/**
 * Calls one customer's queue holds on this instance: beyond it a call is refused (retryable), so
 * an overloaded customer cannot grow this instance's memory, nor hold its pool, without bound.
 */
export const GROUP_COMMIT_QUEUE_MAX = 1024;
/** Pooled connections that writes outside group commit leave to reads (TransactionGate). */
export const POOL_KEPT_FOR_READS = 2;
/**
 * Writes outside group commit that may wait for the gate's place at once, per instance; the next
 * is refused. One project (the caller's) holds at most half of them: 4,096, as the whole line was
 * before the line was kept per project.
 */
export const GATED_WRITES_WAITING_MAX = 8192;
/**
 * The wait a call refused for overload (a full line above) is told to keep before retrying: drawn
 * between these for each refusal, so that the clients of one burst do not all come back together.
 */
export const OVERLOAD_RETRY_DELAY_MS = { min: 500, max: 1500 } as const;

/**
 * Holds whose customer group commit remembers (a Consume or Unfreeze that names no customer is
 * queued with the customer whose Freeze went through this instance): a hint, never a rule (the
 * row locks decide), so a bounded memory that forgets the oldest is enough.
 */
export const GROUP_COMMIT_HOLDS_REMEMBERED = 100_000;

export const PAGE_SIZE_DEFAULT = 20;
export const PAGE_SIZE_MAX = 100;
/**
 * ListAlerts' page when page_size is 0: the largest allowed. Before it paged, ListAlerts answered
 * every alert at once, so a client written then, which reads no next_page_token, misses the least.
 */
export const ALERT_PAGE_SIZE_DEFAULT = PAGE_SIZE_MAX;

/** protobuf Timestamp's valid range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z. */
export const TIMESTAMP_SECONDS_MIN = -62_135_596_800n;
export const TIMESTAMP_SECONDS_MAX = 253_402_300_799n;

/**
 * Stored bound of an account without a start: before every valid instant, so no starts_at the
 * API accepts (0001-01-01T00:00:00Z included) is ever read back as "no start".
 */
export const NO_START_MS = Number(TIMESTAMP_SECONDS_MIN) * 1000 - 1;
/** Stored bound of an account that never expires: after every valid instant, so it sorts last. */
export const NO_EXPIRY_MS = (Number(TIMESTAMP_SECONDS_MAX) + 1) * 1000;

export const DEFAULT_CREDIT_TYPE = "default";
export const DEFAULT_SOURCE = "default";

// Slots and entitlements.

/** Wallets name a kind of resource ("ip", "seat"); same alphabet and length as sources. */
export const WALLET_PATTERN = /^[A-Za-z0-9_.:@-]{1,64}$/;
/** Resource ids and feature keys are keys in UNIQUE indexes, like ids. */
export const RESOURCE_ID_PATTERN = ID_PATTERN;
export const FEATURE_KEY_PATTERN = ID_PATTERN;
/** A pool holds at most as much as one operation may move: within 2^53 - 1, exact as a JSON number. */
export const SLOT_CAPACITY_MAX = AMOUNT_MAX;
/** Entitlement values are short settings (a model name, a number), not documents. */
export const ENTITLEMENT_VALUE_LENGTH_MAX = 4096;
/** Feature keys one list request may name. */
export const FEATURE_KEYS_PER_REQUEST_MAX = 100;
/** Sources (or event types) one event listing may filter on. */
export const EVENT_FILTER_VALUES_MAX = 32;
export const EVENT_LIMIT_DEFAULT = 20;
export const EVENT_LIMIT_MAX = 100;
export const DEFAULT_SLOT_SOURCE = "default";

/**
 * Spendable accounts a write's prefetch locks up front, in spending order. Most spends are
 * covered by the first few, so a customer's cost does not grow with its number of accounts; when
 * these fall short, all of them are read (one more round trip).
 */
export const SPEND_ACCOUNTS_LOCKED_FIRST = 16;

/** Customers per page of the console's search. */
export const CUSTOMER_SEARCH_PAGE_SIZE = 20;
/** Search text: a prefix of an id (128), a name or an email (255). */
export const CUSTOMER_SEARCH_TEXT_MAX = 255;
/** Open holds a customer page lists; beyond, the ledger's FREEZE filter finds the rest. */
export const OPEN_HOLDS_SHOWN_MAX = 100;
/** Points of one balance chart: the latest ones of the range when it holds more entries. */
export const BALANCE_POINTS_MAX = 5_000;

// The event feed (docs/events.md).
/** A stamper or publisher that stops renewing its lease loses it after this; another takes over. */
export const EVENT_LEASE_TTL_MS = 5_000;
/** How long the feed's polls keep EVENTS_POLL_INTERVAL_MS after they last found something; then they slow to EVENTS_IDLE_POLL_INTERVAL_MS. */
export const EVENT_POLL_QUIET_AFTER_MS = 1_000;
/** Events stamped per stamping transaction: one round trip, one UPDATE … CASE. */
export const EVENT_STAMP_BATCH = 1_000;
/** Events a watcher or the publisher reads per query. */
export const EVENT_READ_BATCH = 500;
/** Events pruned per transaction by the sweeper (a short DELETE on an index range). */
export const EVENT_PRUNE_BATCH = 1_000;

/** Customers an instance remembers as having balance alerts (operations/alert-hints.ts): a guess that saves a round trip, forgotten wholesale when full. */
export const ALERT_HINTS_MAX = 100_000;

/**
 * Balance alerts one customer may have (one for all credit types, one per credit type): every
 * write of the customer reads and decides all of them in its transaction, so 20,000 alerts made
 * each of its Deducts take 2 s. A new one past this is refused; replacing one is not.
 */
export const ALERTS_PER_CUSTOMER_MAX = 100;

/**
 * What a ledger page's entries may carry in descriptions and metadata together before the page
 * ends early (with its next_page_token): under gRPC's default 4 MiB message, which clients
 * (grpcurl, the generated ones) refuse past, with room for the rest of the answer; 100 entries of
 * the largest ASCII metadata and description (about 34 KB each) still fit one page. An entry
 * counts LEDGER_ENTRY_BYTES_BESIDE_TEXT more for its other fields.
 */
export const LEDGER_PAGE_BYTES_MAX = 3.5 * 1024 * 1024;
export const LEDGER_ENTRY_BYTES_BESIDE_TEXT = 256;

/**
 * How many of a customer's entries one filtered ledger page looks through before it ends early,
 * possibly empty, with its next_page_token: the filters (operation, credit type, transaction,
 * times) have no index of their own, so a page of a rare match read the customer's whole ledger
 * (0.4 to 0.7 s at 200,000 entries), and paging through it read the ledger once a page. Now a page
 * costs at most this many index entries (about 10 ms), and paging to the end reads the ledger once.
 */
export const LEDGER_SCAN_ROWS_MAX = 10_000;

/** Filtered ledger counts an instance keeps to count on from (operations/ledger-counts.ts), about 100 bytes each. */
export const LEDGER_COUNTS_REMEMBERED = 10_000;
