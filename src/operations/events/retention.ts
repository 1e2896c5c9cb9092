import { EVENT_PRUNE_BATCH } from "../../domain/limits.js";
import { pruneEvents, storedPublisherPosition } from "../../store/event-feed-store.js";
import type { BillingContext } from "../context.js";
import { NATS_PUBLISHER } from "./nats-publisher.js";

export interface EventRetention {
  /** Events older than this are pruned (EVENTS_RETENTION_HOURS). */
  readonly retentionMs: number;
  /**
   * NATS_URL is set here: never prune an event the publisher has not sent, even before it has
   * sent any. Without it, a database that has had a publisher is still held to its position (an
   * instance configured without NATS beside one with it must not prune what the other has not
   * sent); an operator who retires NATS deletes its `event_publishers` row.
   */
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
    const sent = await storedPublisherPosition(ctx.database.pool, NATS_PUBLISHER);
    const notAfter = sent ?? (retention.awaitPublisher ? 0n : null);
    const count = await pruneEvents(ctx.database, { olderThanMs, notAfter, batch: EVENT_PRUNE_BATCH });
    pruned += count;
    if (count < EVENT_PRUNE_BATCH) break;
  }
  return pruned;
}
