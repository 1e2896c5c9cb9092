import { EVENT_PRUNE_BATCH } from "../../domain/limits.js";
import { publisherPosition, pruneEvents } from "../../store/event-feed-store.js";
import type { BillingContext } from "../context.js";
import { NATS_PUBLISHER } from "./nats-publisher.js";

export interface EventRetention {
  /** Events older than this are pruned (EVENTS_RETENTION_HOURS). */
  readonly retentionMs: number;
  /** NATS_URL is set: never prune an event the publisher has not sent. */
  readonly awaitPublisher: boolean;
}

/** Passes of EVENT_PRUNE_BATCH per sweep at most, so one sweep stays short. */
const PRUNE_PASSES_MAX = 10;

/**
 * Prunes the feed's oldest events past retention, in bounded batches, oldest position first
 * (only ever a prefix of the feed, so a cursor is either served whole or cursor_expired). The
 * ledger is never pruned. Returns how many went.
 */
export async function pruneExpiredEvents(ctx: BillingContext, retention: EventRetention): Promise<number> {
  const olderThanMs = ctx.now() - retention.retentionMs;
  let pruned = 0;
  for (let pass = 0; pass < PRUNE_PASSES_MAX; pass++) {
    const notAfter = retention.awaitPublisher ? await publisherPosition(ctx.database.pool, NATS_PUBLISHER) : null;
    const count = await pruneEvents(ctx.database, { olderThanMs, notAfter, batch: EVENT_PRUNE_BATCH });
    pruned += count;
    if (count < EVENT_PRUNE_BATCH) break;
  }
  return pruned;
}
