import type { FeedTail } from "./feed-tail.js";
import type { WatcherSlots } from "./watcher-slots.js";

/** What the writes and the readers of one instance share of the event feed (wired in app.ts). */
export interface EventFeed {
  /** This database's deployment id: the prefix of every event id (newEventId). */
  readonly deploymentId: string;
  /** Whether cursors carry their event's tag (EVENTS_CURSOR_TAGS): off while builds before tags still serve. */
  readonly cursorTags: boolean;
  /** Call after every COMMIT that appended events: the local stamper stamps them at once. */
  notifyCommitted(): void;
  /** Wakes this instance's watchers when the feed moves. */
  readonly tail: FeedTail;
  /** How many watchers this instance serves, per key and in all. */
  readonly watchers: WatcherSlots;
}
