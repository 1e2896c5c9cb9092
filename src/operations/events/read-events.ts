import { type CursorSpace, decodeFeedCursor, encodeFeedCursor, type FeedEvent } from "../../domain/events.js";
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
  after: bigint | null,
  limit: number,
): Promise<{ rows: FeedEvent[]; seenThrough: bigint }> {
  const pool = ctx.database.pool;
  for (;;) {
    const from = after ?? (await oldestKept(ctx, query));
    const filter: FeedFilter = { projectId: query.projectId, after: from, customerId: query.customerId, types: query.types };
    const read = await readFeedChecked(pool, filter, limit);
    if (after !== null) checkIssued(after, read);
    if (read.prunedThrough <= from) return { rows: read.rows, seenThrough: seenThroughOf(query, read, from, limit) };
    if (after !== null) throw new BillingError("cursor_expired", undefined, { field: "cursor" });
  }
}

/** Where a read from the oldest kept event starts: after what was pruned. */
const oldestKept = ({ database }: BillingContext, query: EventQuery): Promise<bigint> =>
  query.projectId === null ? prunedThrough(database.pool) : projectPrunedThrough(database.pool, query.projectId);

/** How far a read from `from` has seen everything it asked for (readAfter's `seenThrough`). */
function seenThroughOf(query: EventQuery, read: CheckedRead, from: bigint, limit: number): bigint {
  const last = read.rows.at(-1);
  const lastPosition = last ? positionIn(query, last) : from;
  return read.rows.length < limit && read.top > lastPosition ? read.top : lastPosition;
}

/** The feed a query reads: its project's, or (no project) every project's. */
const spaceOf = (query: { readonly projectId: bigint | null }): CursorSpace => (query.projectId === null ? "global" : "project");

/**
 * A cursor past the feed's top (and past what was pruned) was never issued for it: another feed's,
 * or made up. Reading on would answer nothing now and later skip every event up to it.
 */
function checkIssued(after: bigint, read: CheckedRead): void {
  if (after > read.top && after > read.prunedThrough) {
    throw new BillingError("invalid_page_token", "cursor is ahead of the feed: it was not issued for these events.", { field: "cursor" });
  }
}

const positionOf = (query: EventQuery): bigint | null => (query.cursor === "" ? null : decodeFeedCursor(query.cursor, spaceOf(query)));

/** An event's place in the feed the query reads: its project's, or (no project) the global one. */
export const positionIn = (query: { readonly projectId: bigint | null }, event: FeedEvent): bigint =>
  query.projectId === null ? event.position : event.projectPosition;

/** One page of a project's events in commit order (GET /v1/events). */
export function listEvents(ctx: BillingContext, query: EventQuery, limit: number): Promise<FeedPage> {
  return runQuery(async () => {
    const { rows, seenThrough } = await readAfter(ctx, query, positionOf(query), limit + 1);
    const items = rows.slice(0, limit);
    const hasMore = rows.length > limit;
    const last = items.at(-1);
    const through = hasMore && last ? positionIn(query, last) : seenThrough;
    return { items, nextCursor: through > 0n ? encodeFeedCursor(through, spaceOf(query)) : null, hasMore };
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
  const giveBack = feed.watchers.take(String(apiKeyId ?? "service"));
  let after = positionOf(query);
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
      const page = await runQuery(() => readAfter(ctx, query, after, EVENT_READ_BATCH));
      for (const event of page.rows) {
        if (signal.aborted) return;
        await deliver(event);
        after = positionIn(query, event);
      }
      after = page.seenThrough;
      // A full page: more may be there already.
      if (page.rows.length === EVENT_READ_BATCH) moved = true;
    }
  } finally {
    giveBack();
    unsubscribe();
    signal.removeEventListener("abort", poke);
  }
}
