import type { Logger } from "pino";
import type { Database } from "../../store/database.js";
import { leaseOwnerId } from "../../store/leases-store.js";
import { ensureDeploymentId } from "../../store/settings-store.js";
import type { EventFeed } from "./event-feed.js";
import { EventStamper, STAMPER_LEASE } from "./event-stamper.js";
import { FeedTail } from "./feed-tail.js";
import { LeaseKeeper } from "./lease-keeper.js";
import { NATS_PUBLISHER, NatsPublisher } from "./nats-publisher.js";
import { type WatcherLimits, WatcherSlots } from "./watcher-slots.js";

export interface EventFeedOptions {
  readonly pollIntervalMs: number;
  /** What the polls slow to while the feed is quiet (IdlePoll). */
  readonly idlePollIntervalMs: number;
  /** The least time between two stamping rounds that local commits asked for (EventStamper). */
  readonly stampSpacingMs: number;
  /** Unset: no NATS publisher. */
  readonly nats: { readonly url: string; readonly stream: string; readonly subjectPrefix: string } | null;
  readonly log: Logger;
  readonly onPublishLag?: (events: number) => void;
  readonly watchers: WatcherLimits;
  /** Whether cursors carry their event's tag (EVENTS_CURSOR_TAGS). */
  readonly cursorTags: boolean;
}

export interface RunningEventFeed {
  readonly feed: EventFeed;
  stop(): Promise<void>;
}

/**
 * This instance's part of the event feed: the deployment id, a stamper and (with NATS) a
 * publisher, each acting only while it holds its lease, and the watchers' tail. A stamp wakes the
 * tail and the publisher at once.
 */
export async function startEventFeed(database: Database, options: EventFeedOptions): Promise<RunningEventFeed> {
  const deploymentId = await ensureDeploymentId(database.pool);
  const owner = leaseOwnerId();
  const tail = new FeedTail(database, options.pollIntervalMs, options.idlePollIntervalMs);
  const publisher =
    options.nats === null
      ? null
      : new NatsPublisher(database, new LeaseKeeper(database, NATS_PUBLISHER, owner), {
          ...options.nats,
          intervalMs: Math.max(options.pollIntervalMs, 50),
          idleIntervalMs: options.idlePollIntervalMs,
          log: options.log,
          cursorTags: options.cursorTags,
          ...(options.onPublishLag ? { onLag: options.onPublishLag } : {}),
        });
  const stamper = new EventStamper(database, new LeaseKeeper(database, STAMPER_LEASE, owner), {
    intervalMs: options.pollIntervalMs,
    idleIntervalMs: options.idlePollIntervalMs,
    spacingMs: options.stampSpacingMs,
    log: options.log,
    onStamped: () => {
      tail.poke();
      publisher?.poke();
    },
  });
  return {
    feed: {
      deploymentId,
      cursorTags: options.cursorTags,
      // The stamper stamps them soon; the tail and the publisher, if their polls had slowed on a
      // quiet feed, look again at once (the stamper may be another instance's).
      notifyCommitted: () => {
        stamper.notifyCommitted();
        tail.hurry();
        publisher?.hurry();
      },
      tail,
      watchers: new WatcherSlots(options.watchers),
    },
    async stop() {
      await Promise.all([stamper.stop(), publisher?.stop(), tail.stop()]);
    },
  };
}
