import pino from "pino";
import { type ProjectEventJson, projectEventJson } from "../../domain/events.js";
import type { Database } from "../../store/database.js";
import type { BillingContext } from "../context.js";
import { watchEvents } from "./read-events.js";
import { startEventFeed } from "./start-event-feed.js";

export interface TailOptions {
  /** null: every project. */
  readonly projectId: bigint | null;
  readonly customerId: string | null;
  /** Resume after this event's cursor; empty: from the oldest kept event. */
  readonly cursor: string;
}

/**
 * The operators' `events tail`: every kept event, then each new one, as JSON (amounts as strings,
 * plus its project id), until `signal` aborts. It runs a stamper of its own, which stamps only
 * when no server holds the lease, so it follows even with no server running.
 */
export async function tailEvents(
  database: Database,
  options: TailOptions,
  signal: AbortSignal,
  print: (event: ProjectEventJson) => void,
): Promise<void> {
  const running = await startEventFeed(database, {
    pollIntervalMs: 200,
    idlePollIntervalMs: 1_000,
    stampSpacingMs: 10,
    nats: null,
    log: pino({ level: "silent" }),
    watchers: { perKey: 1, perProject: 1, total: 1 },
    // The operators' own cursors, taken back by this build's tail.
    cursorTags: true,
  });
  const ctx: BillingContext = { database, now: Date.now, events: running.feed };
  try {
    await watchEvents(
      ctx,
      { projectId: options.projectId, cursor: options.cursor, customerId: options.customerId, types: [] },
      null,
      signal,
      async (e) => print(projectEventJson(e, options.projectId === null ? "global" : "project")),
    );
  } finally {
    await running.stop();
  }
}
