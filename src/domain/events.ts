import { createHash } from "node:crypto";
import { BillingError } from "../errors/billing-error.js";

/**
 * The change feed's vocabulary (docs/events.md). Pure: the event types, what an event carries,
 * and its cursor.
 */

export const LEDGER_EVENT_TYPES = [
  "ledger.deposit",
  "ledger.deduct",
  "ledger.freeze",
  "ledger.consume",
  "ledger.unfreeze",
  "ledger.expire",
  "ledger.refund",
  "ledger.void",
] as const;
export const ALERT_EVENT_TYPES = ["balance.low", "balance.depleted", "balance.recovered"] as const;
export const SLOT_EVENT_TYPES = ["slot.grant", "slot.revoke", "slot.claim", "slot.release"] as const;
export const ENTITLEMENT_EVENT_TYPES = ["entitlement.set", "entitlement.remove"] as const;
export const EVENT_TYPES = [...LEDGER_EVENT_TYPES, ...ALERT_EVENT_TYPES, ...SLOT_EVENT_TYPES, ...ENTITLEMENT_EVENT_TYPES] as const;

export type LedgerEventType = (typeof LEDGER_EVENT_TYPES)[number];
export type AlertEventType = (typeof ALERT_EVENT_TYPES)[number];
export type EventType = (typeof EVENT_TYPES)[number];

/** A customer's balance over every credit type, as an entry leaves it. */
export interface BalanceAfter {
  readonly total: bigint;
  readonly used: bigint;
  readonly frozen: bigint;
  readonly available: bigint;
}

/**
 * One ledger entry as an event carries it. The customer's `sequence` identifies it (the entry's
 * row id is not known to the write that builds the event: it comes from the INSERT).
 */
export interface EventEntry {
  /** The customer's sequence: 1, 2, 3… in commit order, gapless. */
  readonly sequence: bigint;
  readonly operation: string;
  readonly amount: bigint;
  readonly accountId: bigint;
  readonly creditType: string;
  readonly balanceAfter: BalanceAfter;
}

/**
 * What an event says beyond its columns: a ledger event its entries and the balance its last entry
 * leaves; slot, entitlement and alert events no entries, their facts in `data` (string values).
 */
export interface EventPayload {
  readonly entries: readonly EventEntry[];
  readonly balanceAfter: BalanceAfter | null;
  readonly data: Readonly<Record<string, string>>;
}

/** An event to append, as a write's transaction builds it. */
export interface NewEvent {
  readonly eventId: string;
  readonly projectId: bigint;
  readonly customerId: string | null;
  readonly type: EventType;
  readonly transactionId: string | null;
  readonly payload: EventPayload;
  readonly nowMs: number;
}

/** A stamped event as readers get it. */
export interface FeedEvent {
  readonly eventId: string;
  /** Commit order over every project (the publisher, the operators' tail). */
  readonly position: bigint;
  /** Commit order within its project: what the project's readers page by and their cursors hold. */
  readonly projectPosition: bigint;
  readonly projectId: bigint;
  readonly customerId: string | null;
  readonly type: string;
  readonly transactionId: string | null;
  readonly payload: EventPayload;
  readonly createdAtMs: number;
  /** Its cursor goes without the event's tag (EVENTS_CURSOR_TAGS=off, while builds before tags still serve). */
  readonly untagged?: true;
}

/** The event a cursor of `e` names: its id, or none when its cursor goes untagged. */
export const cursorEventOf = (e: FeedEvent): string | null => (e.untagged ? null : e.eventId);

// Stored payload: JSON with snake_case names and integers as decimal strings (exact beyond 2^53).

type Json = Record<string, unknown>;

const balanceJson = (b: BalanceAfter): Json => ({
  total: b.total.toString(),
  used: b.used.toString(),
  frozen: b.frozen.toString(),
  available: b.available.toString(),
});

/** The payload as stored in `events.payload`. */
export function payloadJson(payload: EventPayload): Json {
  return {
    entries: payload.entries.map((e) => ({
      sequence: e.sequence.toString(),
      operation: e.operation,
      amount: e.amount.toString(),
      account_id: e.accountId.toString(),
      credit_type: e.creditType,
      balance_after: balanceJson(e.balanceAfter),
    })),
    balance_after: payload.balanceAfter === null ? null : balanceJson(payload.balanceAfter),
    data: { ...payload.data },
  };
}

const big = (value: unknown, what: string): bigint => {
  if (typeof value === "string" && /^-?\d{1,20}$/.test(value)) return BigInt(value);
  throw new Error(`event payload: ${what} is not an integer string`);
};
const text = (value: unknown, what: string): string => {
  if (typeof value === "string") return value;
  throw new Error(`event payload: ${what} is not a string`);
};
const object = (value: unknown, what: string): Json => {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as Json;
  throw new Error(`event payload: ${what} is not an object`);
};

function balanceOf(value: unknown): BalanceAfter {
  const b = object(value, "balance_after");
  return {
    total: big(b.total, "total"),
    used: big(b.used, "used"),
    frozen: big(b.frozen, "frozen"),
    available: big(b.available, "available"),
  };
}

/** A stored payload read back (untrusted: anything malformed throws). */
export function parsePayload(value: unknown): EventPayload {
  const p = object(value, "payload");
  const entries = Array.isArray(p.entries) ? p.entries : [];
  const data = p.data === undefined ? {} : object(p.data, "data");
  return {
    entries: entries.map((raw: unknown) => {
      const e = object(raw, "entry");
      return {
        sequence: big(e.sequence, "sequence"),
        operation: text(e.operation, "operation"),
        amount: big(e.amount, "amount"),
        accountId: big(e.account_id, "account_id"),
        creditType: text(e.credit_type, "credit_type"),
        balanceAfter: balanceOf(e.balance_after),
      };
    }),
    balanceAfter: p.balance_after === null || p.balance_after === undefined ? null : balanceOf(p.balance_after),
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, text(v, `data.${k}`)])),
  };
}

// Cursors: an event's place in the feed (its commit-order position), opaque to clients. A
// project's feed (the API's) and the feed of every project (the operators' `events tail` without
// --project) number events apart, so their cursors differ in prefix: one pasted into the other
// is refused, never read as a position it is not. A cursor also carries a tag of the event it was
// issued for: a database restored from a backup numbers its new events again from an older top,
// and a cursor issued before the restore must then be refused, not read as a place in events it
// never saw (it would skip them). Cursors made before tags (`ev1.2s`) are still taken, unchecked.

/** Which numbering a cursor belongs to: one project's events, or every project's. */
export type CursorSpace = "project" | "global";

/** A cursor read back: a position, and the tag of the event it was issued for (null: a cursor without one). */
export interface FeedCursor {
  readonly position: bigint;
  readonly eventTag: string | null;
}

const CURSOR_PREFIXES: Readonly<Record<CursorSpace, string>> = { project: "ev1.", global: "evall1." };

/** 8 hex digits of the event id's SHA-256: enough to tell the event a cursor was issued for from another numbered the same. */
export const eventTagOf = (eventId: string): string => createHash("sha256").update(eventId).digest("hex").slice(0, 8);

/** The cursor of the event `eventId` at `position` (null: a position no kept event holds, as a pruned mark). */
export const encodeFeedCursor = (position: bigint, space: CursorSpace, eventId: string | null): string =>
  `${CURSOR_PREFIXES[space]}${position.toString(36)}${eventId === null ? "" : `.${eventTagOf(eventId)}`}`;

/** What a cursor of `space` names; empty → position 0 (from the oldest kept event); anything else → invalid_page_token. */
export function decodeFeedCursor(cursor: string, space: CursorSpace, field = "cursor"): FeedCursor {
  if (cursor === "") return { position: 0n, eventTag: null };
  const other: CursorSpace = space === "project" ? "global" : "project";
  if (cursor.startsWith(CURSOR_PREFIXES[other])) {
    const message =
      other === "global"
        ? "cursor is from the feed of every project (events tail without --project), not from one project's."
        : "cursor is from one project's feed (events tail --project NAME takes it); the feed of every project numbers its events apart.";
    throw new BillingError("invalid_page_token", message, { field });
  }
  const prefix = CURSOR_PREFIXES[space];
  const body = cursor.startsWith(prefix) ? cursor.slice(prefix.length) : "";
  const parts = /^([0-9a-z]{1,13})(?:\.([0-9a-f]{8}))?$/.exec(body);
  if (parts?.[1] !== undefined) {
    const position = [...parts[1]].reduce((n, c) => n * 36n + BigInt(Number.parseInt(c, 36)), 0n);
    if (position <= 2n ** 63n) return { position, eventTag: parts[2] ?? null };
  }
  throw new BillingError("invalid_page_token", "cursor is not an event cursor.", { field });
}

/** An event as JSON (GET /v1/events items, NATS message bodies): ids and amounts as strings, except where noted. */
export interface EventJson {
  readonly id: string;
  readonly cursor: string;
  readonly type: string;
  readonly customer_id: string | null;
  readonly transaction_id: string | null;
  readonly entries: readonly Record<string, unknown>[];
  readonly balance_after: Record<string, unknown> | null;
  readonly data: Readonly<Record<string, string>>;
  readonly created_at: string;
}

/**
 * The JSON form of a stamped event; `amounts` says how amounts are written (HTTP: numbers, NATS:
 * strings), `cursor` which position its cursor holds (a project's readers: the project's).
 */
export function eventJson(e: FeedEvent, amounts: "number" | "string", cursor: CursorSpace): EventJson {
  const amount = (v: bigint): number | string => (amounts === "string" ? v.toString() : exactNumber(v));
  const balance = (b: BalanceAfter) => ({
    total: amount(b.total),
    used: amount(b.used),
    frozen: amount(b.frozen),
    available: amount(b.available),
  });
  return {
    id: e.eventId,
    cursor:
      cursor === "project"
        ? encodeFeedCursor(e.projectPosition, "project", cursorEventOf(e))
        : encodeFeedCursor(e.position, "global", cursorEventOf(e)),
    type: e.type,
    customer_id: e.customerId,
    transaction_id: e.transactionId,
    entries: e.payload.entries.map((entry) => ({
      sequence: amount(entry.sequence),
      operation: entry.operation,
      amount: amount(entry.amount),
      account_id: entry.accountId.toString(),
      credit_type: entry.creditType,
      balance_after: balance(entry.balanceAfter),
    })),
    balance_after: e.payload.balanceAfter === null ? null : balance(e.payload.balanceAfter),
    data: e.payload.data,
    created_at: new Date(e.createdAtMs).toISOString(),
  };
}

/** An event for readers of every project (NATS message bodies, `events tail`): amounts as strings, and its project. */
export type ProjectEventJson = EventJson & { readonly project_id: string };

export const projectEventJson = (e: FeedEvent, cursor: CursorSpace): ProjectEventJson => ({
  ...eventJson(e, "string", cursor),
  project_id: e.projectId.toString(),
});

/** A JSON number only when exact (balances are kept within 2^53 − 1, CUSTOMER_CREDITS_TOTAL_MAX). */
function exactNumber(v: bigint): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error("an event amount beyond 2^53 - 1 cannot be a JSON number");
  return n;
}
