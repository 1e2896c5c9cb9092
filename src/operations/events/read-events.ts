import { setTimeout as sleep } from "node:timers/promises";
import { type CursorSpace, decodeFeedCursor, encodeFeedCursor, eventTagOf, type FeedCursor, type FeedEvent } from "../../domain/events.js";
import { EVENT_READ_BATCH } from "../../domain/limits.js";
import { BillingError } from "../../errors/billing-error.js";
import { type CheckedRead, type FeedFilter, projectPrunedThrough, prunedThrough, readFeedChecked } from "../../store/event-feed-store.js";
import { runQuery } from "../../store/run-transaction.js";
import type { BillingContext } from "../context.js";

/** Which events a reader of one project wants. */
export interface EventQuery {
  /** null: every project's events (the operators' `events tail`; transports always name the caller's). */
  readonly projectId: bigint | null;
  /** An event's cursor: the events after it. Empty: from the oldest kept event. */
  readonly cursor: string;
  readonly customerId: string | null;
  /** Empty: every type. */
  readonly types: readonly string[];
}

export interface FeedPage {
  readonly items: readonly FeedEvent[];
  /**
   * Where the next read starts: the last item's cursor when there are more, else the feed's top
   * as the read saw it (every matching event up to it is in `items` or before the cursor); null
   * while the feed is empty.
   */
  readonly nextCursor: string | null;
  readonly hasMore: boolean;
}

/** How far a reader has seen: a position, and the id of the event there (null: none is kept there). */
interface SeenMark {
  readonly position: bigint;
  readonly eventId: string | null;
}

/**
 * Reads up to `limit` events after `after`. The feed's pruned mark is read after the events: if a
 * prune reached past `after` before or during the read, an event the caller has not seen may be
 * gone, so the read fails with cursor_expired rather than skip it silently. A read from the
 * oldest event instead starts again from what is kept. `seenThrough` is how far the reader has
 * seen everything it asked for: the last row's position when the page is full, else the feed's
 * top before the read (so a filtered reader does not scan the same others' events again).
 */
async function readAfter(
  ctx: BillingContext,
  query: EventQuery,
  after: FeedCursor | null,
  limit: number,
): Promise<{ rows: FeedEvent[]; seenThrough: SeenMark }> {
  const pool = ctx.database.pool;
  for (;;) {
    const from = after?.position ?? (await oldestKept(ctx, query));
    const filter: FeedFilter = { projectId: query.projectId, after: from, customerId: query.customerId, types: query.types };
    const read = await readFeedChecked(pool, filter, limit, after?.position ?? null);
    if (after !== null) checkIssued(after, read);
    if (read.prunedThrough <= from) return { rows: read.rows, seenThrough: seenThroughOf(query, read, from, limit) };
    if (after !== null) throw new BillingError("cursor_expired", undefined, { field: "cursor" });
  }
}

/** Where a read from the oldest event starts: after what was pruned. */
const oldestKept = ({ database }: BillingContext, query: EventQuery): Promise<bigint> =>
  query.projectId === null ? prunedThrough(database.pool) : projectPrunedThrough(database.pool, query.projectId);

/** How far a read from `from` has seen everything it asked for (readAfter's `seenThrough`). */
function seenThroughOf(query: EventQuery, read: CheckedRead, from: bigint, limit: number): SeenMark {
  const last = read.rows.at(-1);
  const lastPosition = last ? positionIn(query, last) : from;
  if (read.rows.length < limit && read.top > lastPosition) return { position: read.top, eventId: read.topEventId };
  return { position: lastPosition, eventId: last ? last.eventId : read.eventIdAt };
}

/** The feed a query reads: its project's, or (no project) every project's. */
const spaceOf = (query: { readonly projectId: bigint | null }): CursorSpace => (query.projectId === null ? "global" : "project");

/**
 * A cursor past the feed's top (and past what was pruned) was never issued for it: another feed's,
 * or made up. Reading on would answer nothing now and later skip every event up to it. A cursor
 * whose position now holds another event than the one it was issued for comes from before the
 * feed was numbered again (a restore from a backup): the events after it are not the ones it
 * follows, so reading on could skip some. Another project's cursor looks the same (its tag names
 * an event of that project), and the message says both.
 */
function checkIssued(after: FeedCursor, read: CheckedRead): void {
  if (after.position > read.top && after.position > read.prunedThrough) {
    throw new BillingError(
      "invalid_page_token",
      "cursor is ahead of the feed: it was not issued for these events (another project's, or one from before the database was restored from an earlier backup).",
      { field: "cursor" },
    );
  }
  if (after.eventTag !== null && read.eventIdAt !== null && eventTagOf(read.eventIdAt) !== after.eventTag) {
    throw new BillingError(
      "cursor_expired",
      "The event this cursor was issued after is not in this feed: the cursor is another project's, or the database was restored from an earlier backup (then read again from the oldest event, with an empty cursor).",
      { field: "cursor" },
    );
  }
}

const cursorOf = (query: EventQuery): FeedCursor | null => (query.cursor === "" ? null : decodeFeedCursor(query.cursor, spaceOf(query)));

/** An event's place in the feed the query reads: its project's, or (no project) the global one. */
export const positionIn = (query: { readonly projectId: bigint | null }, event: FeedEvent): bigint =>
  query.projectId === null ? event.position : event.projectPosition;

/** Whether this instance's cursors carry their event's tag (EVENTS_CURSOR_TAGS; the operators' tail has no feed: always). */
const cursorsTagged = (ctx: BillingContext): boolean => ctx.events?.cursorTags ?? true;

/** The event with its cursor to go untagged. */
export const untagged = (e: FeedEvent): FeedEvent => ({ ...e, untagged: true });

/** One page of a project's events in commit order (GET /v1/events). */
export function listEvents(ctx: BillingContext, query: EventQuery, limit: number): Promise<FeedPage> {
  return runQuery(async () => {
    const { rows, seenThrough } = await readAfter(ctx, query, cursorOf(query), limit + 1);
    const tagged = cursorsTagged(ctx);
    const items = rows.slice(0, limit).map((e) => (tagged ? e : untagged(e)));
    const hasMore = rows.length > limit;
    const last = items.at(-1);
    const through = hasMore && last ? { position: positionIn(query, last), eventId: last.eventId } : seenThrough;
    const nextCursor = through.position > 0n ? encodeFeedCursor(through.position, spaceOf(query), tagged ? through.eventId : null) : null;
    return { items, nextCursor, hasMore };
  });
}

/**
 * Streams a project's events in commit order until `signal` aborts: what exists after the cursor,
 * then each event as it is stamped. `deliver` is awaited (the stream's backpressure). At least
 * once, never a skip: the next read always starts after the last position delivered.
 */
export async function watchEvents(
  ctx: BillingContext,
  query: EventQuery,
  /** The stream's API key (null: the service's own tail), whose open streams are bounded. */
  apiKeyId: bigint | null,
  signal: AbortSignal,
  deliver: (event: FeedEvent) => Promise<void>,
): Promise<void> {
  const feed = ctx.events;
  if (!feed) throw new Error("watchEvents needs the instance's event feed");
  const send = feed.cursorTags ? deliver : (event: FeedEvent) => deliver(untagged(event));
  const giveBack = feed.watchers.take(String(query.projectId ?? "service"), String(apiKeyId ?? "service"));
  let after = cursorOf(query);
  let read = 0;
  let moved = true;
  let wake: (() => void) | null = null;
  const poke = () => {
    moved = true;
    wake?.();
  };
  const unsubscribe = feed.tail.subscribe(poke);
  signal.addEventListener("abort", poke);
  try {
    while (!signal.aborted) {
      if (!moved) await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
      moved = false;
      const page = await readRidingOutages(() => runQuery(() => readAfter(ctx, query, after, EVENT_READ_BATCH)), read++ > 0, signal);
      if (page === null || !(await sendAll(page.rows, send, signal))) return;
      // Positions this stream has read itself need no tag: only the client's cursor is checked.
      after = { position: page.seenThrough.position, eventTag: null };
      // A full page: more may be there already.
      if (page.rows.length === EVENT_READ_BATCH) moved = true;
    }
  } finally {
    giveBack();
    unsubscribe();
    signal.removeEventListener("abort", poke);
  }
}

/** Sends the events in order, each once the last was taken; false when the stream ended first. */
async function sendAll(events: readonly FeedEvent[], send: (event: FeedEvent) => Promise<void>, signal: AbortSignal): Promise<boolean> {
  for (const event of events) {
    if (signal.aborted) return false;
    await send(event);
  }
  return true;
}

/** How long a watcher waits before reading again when the database was away: doubling from the first, up to the last. */
export const WATCH_OUTAGE_RETRY_MS = { first: 250, max: 5_000 } as const;

/**
 * A watcher's read that rides out a database outage once the stream has started (`started`): a
 * read that finds the database away (service_unavailable) is tried again after a wait, until it
 * answers or the stream ends (null). A failover or a restart of the database then delays the
 * events instead of ending every stream for its clients to reconnect. A stream's first read
 * fails at once, as any call would: a client that connects during an outage is told so.
 */
async function readRidingOutages<T>(read: () => Promise<T>, started: boolean, signal: AbortSignal): Promise<T | null> {
  for (let waitMs: number = WATCH_OUTAGE_RETRY_MS.first; ; waitMs = Math.min(waitMs * 2, WATCH_OUTAGE_RETRY_MS.max)) {
    try {
      return await read();
    } catch (error) {
      if (!started || !(error instanceof BillingError && error.code === "service_unavailable")) throw error;
    }
    const waited = await sleep(waitMs, true, { signal }).catch(() => false);
    if (!waited) return null;
  }
}
