import { JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createConnection } from "node:net";
import type { Logger } from "pino";
import { type FeedEvent, projectEventJson } from "../../domain/events.js";
import { EVENT_READ_BATCH } from "../../domain/limits.js";
import { serversForLog } from "../../logger.js";
import type { Database } from "../../store/database.js";
import {
  type CheckedMark,
  lastPosition,
  publisherMarkChecked,
  publisherPosition,
  readFeed,
  rewindPublisher,
  savePublisherPosition,
  savePublisherTarget,
} from "../../store/event-feed-store.js";
import type { LeaseKeeper } from "./lease-keeper.js";
import { IdlePoll } from "./idle-poll.js";
import { WakeUp } from "./wake-up.js";

/** The publisher's lease and its row in event_publishers. */
export const NATS_PUBLISHER = "nats";
/**
 * How long a publish waits for JetStream's ack before the batch is tried again: well inside the
 * lease (EVENT_LEASE_TTL_MS, renewed before each batch), so a publisher stuck on acks loses its
 * lease only when it is really gone, never while it is still sending.
 */
const PUBLISH_ACK_TIMEOUT_MS = 2_000;
/** NATS's own port, when NATS_URL names none for a server. */
const NATS_PORT_DEFAULT = 4222;
/**
 * How long each step of connecting may take (the server's greeting, the handshake, the stream's
 * lookup): a NATS that accepts connections and answers nothing (a frozen host) must not hold
 * the publisher past its lease, or another instance takes over while it still means to publish.
 */
const CONNECT_TIMEOUT_MS = 2_000;
/**
 * The longest pause between two tries while NATS is down (they start at the interval and
 * double): with a try's CONNECT_TIMEOUT_MS, the lease is renewed well inside its lifetime.
 */
const OUTAGE_RETRY_MAX_MS = 1_000;
/** How often a publisher holding the lease checks its stored position against the feed again (feedRewoundUnder). */
const MARK_RECHECK_MS = 10_000;

export interface NatsPublisherOptions {
  readonly url: string;
  readonly stream: string;
  readonly subjectPrefix: string;
  readonly intervalMs: number;
  /** The interval the polls slow to while no events come (IdlePoll). */
  readonly idleIntervalMs: number;
  readonly log: Logger;
  /** How long a publish waits for JetStream's ack (default PUBLISH_ACK_TIMEOUT_MS). */
  readonly ackTimeoutMs?: number;
  /** Stamped events not yet sent (the lag gauge). */
  readonly onLag?: (events: number) => void;
  /** Whether the messages' cursors carry their event's tag (EVENTS_CURSOR_TAGS; default on). */
  readonly cursorTags?: boolean;
  /** How often the stored position is checked against the feed while the lease is held (default MARK_RECHECK_MS). */
  readonly recheckMs?: number;
}

/**
 * Whether a stream subject filter captures every subject we publish, `<prefix>.<project>.<kind>.<what>`
 * (every event type is two tokens): token by token, `*` takes any one, `>` the rest, a literal only itself.
 */
export function capturesEvents(filter: string, prefix: string): boolean {
  const ours = [...prefix.split("."), "*", "*", "*"];
  const tokens = filter.split(".");
  for (const [i, token] of tokens.entries()) {
    if (token === ">") return i < ours.length;
    const want = ours[i];
    if (want === undefined || (token !== "*" && (want === "*" || token !== want))) return false;
  }
  return tokens.length === ours.length;
}

/**
 * Resolves once the first server of a nats:// or tls:// URL sends its greeting (INFO, in the
 * clear before any TLS) within `timeoutMs`, on a socket closed either way; throws otherwise.
 * Checked before connecting because nats.js leaves its socket open when the greeting does not
 * come before its own timeout (a frozen server): one more open socket every try.
 */
export async function natsGreets(url: string, timeoutMs: number): Promise<void> {
  const first = new URL(url.split(",")[0] ?? url);
  if (first.protocol !== "nats:" && first.protocol !== "tls:") return;
  const socket = createConnection({ host: first.hostname, port: Number(first.port || NATS_PORT_DEFAULT) });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`NATS sent no greeting within ${timeoutMs} ms`)), timeoutMs);
      socket.once("data", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  } finally {
    socket.destroy();
  }
}

/**
 * Whether the feed was rewound under the publisher's stored mark: a database restored from a
 * backup not taken in one snapshot with event_publishers (or restored under a running instance)
 * numbers its new events again below the stored position, so reading on from it would skip them
 * for good. Seen as a position past the feed's top, or another event than the one sent last at
 * it. A position the feed was pruned through is never rewound: numbering goes on after it.
 */
export function feedRewoundUnder(mark: CheckedMark): boolean {
  const { sent, top, prunedThrough } = mark;
  if (sent.position <= prunedThrough) return false;
  if (sent.position > top) return true;
  return mark.eventKept && sent.eventId !== null && mark.eventIdThere !== sent.eventId;
}

/** `<prefix>.<project id>.<event type>`, e.g. velobase.1.ledger.deduct. */
export const subjectOf = (prefix: string, event: FeedEvent): string => `${prefix}.${event.projectId}.${event.type}`;

/** A step that talks to NATS failed (connect, the stream's lookup, a publish): NATS is down, not the database. */
class NatsUnreachable extends Error {
  constructor(cause: unknown) {
    super("NATS unreachable", { cause });
    this.name = "NatsUnreachable";
  }
}

/** Runs a step that talks to NATS; its failure is NATS's. */
async function onNats<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw new NatsUnreachable(error);
  }
}

/**
 * Sends every stamped event to a JetStream stream, in position order, from the position stored in
 * event_publishers (so a restarted or newly elected publisher resumes where the last one stood).
 * One per database: only the holder of the `nats` lease publishes. Each message carries
 * Nats-Msg-Id = the event id, so a batch sent again after a crash is dropped by JetStream as
 * duplicates inside its window. NATS down: events wait in the outbox, one warning per outage.
 * What an operator reads: one line when this instance takes the lease and one when another has
 * it (whose lag gauge counts); NATS down and the database down are each said once, as what they
 * are, and each is followed by the line that says it is over (or that another instance took over).
 */
export class NatsPublisher {
  private readonly wakeUp = new WakeUp();
  private stopped = false;
  private readonly loop: Promise<void>;
  private connection: NatsConnection | null = null;
  private client: JetStreamClient | null = null;
  /** NATS could not be reached (since `outageSinceMs`). */
  private outage = false;
  private outageSinceMs = 0;
  /** The database could not be read (the feed, the position, the lease). */
  private feedDown = false;
  /** Whether this instance held the lease at the last answer (not at a try the database failed). */
  private publishing = false;
  private retryMs = 0;
  /** When the stored mark was last checked against the feed (0: not since this instance took the lease). */
  private checkedAtMs = 0;
  /** Events sent since start: a round that sent none lets the poll slow down (IdlePoll). */
  private sent = 0;
  private readonly poll: IdlePoll;

  constructor(
    private readonly database: Database,
    private readonly lease: LeaseKeeper,
    private readonly options: NatsPublisherOptions,
  ) {
    this.poll = new IdlePoll(options.intervalMs, options.idleIntervalMs);
    this.loop = this.run();
  }

  /**
   * This instance committed events, which the stamper (here or on another instance) is about to
   * stamp: poll at the base interval again, at once if the polls had slowed. Not a round per
   * commit: once at the base interval, a commit only keeps it there.
   */
  hurry(): void {
    this.poll.hurry(() => this.wakeUp.poke());
  }

  /** New events were stamped: publish without waiting for the interval. */
  poke(): void {
    this.wakeUp.poke();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const nudged = await this.pause();
      if (this.stopped) break;
      const sentBefore = this.sent;
      await this.round();
      this.poll.record(nudged || this.sent > sentBefore);
    }
  }

  /** Where it sends, for its lines: the stream, the subject prefix and the servers (without credentials). */
  private get where(): { stream: string; subjectPrefix: string; server: string } {
    return {
      stream: this.options.stream,
      subjectPrefix: this.options.subjectPrefix,
      server: serversForLog(this.options.url, NATS_PORT_DEFAULT),
    };
  }

  /** One round: publish what is waiting when this instance holds the lease; each outage is said once. */
  private async round(): Promise<void> {
    try {
      const held = await this.lease.held();
      this.sayLease(held);
      if (!held) {
        // Another instance publishes (and reports its own outages): this one's are over for it.
        this.options.onLag?.(0);
        this.outage = false;
        this.feedDown = false;
        this.checkedAtMs = 0;
        return;
      }
      // Not caught up (the lease went, or stop): NATS has not shown it is back yet.
      if (!(await this.publishAll())) return;
      if (this.outage) {
        this.options.log.info({ outageMs: Date.now() - this.outageSinceMs }, "NATS reachable again; publishing the waiting events");
      }
      if (this.feedDown) this.options.log.info("the NATS publisher reads the event feed again");
      this.outage = false;
      this.feedDown = false;
    } catch (error) {
      if (error instanceof NatsUnreachable) await this.natsFailed(error.cause);
      else this.feedFailed(error);
    }
  }

  /** Says when this instance starts or stops publishing: whose lag gauge and warnings count. */
  private sayLease(held: boolean): void {
    if (held === this.publishing) return;
    this.publishing = held;
    if (held) this.options.log.info(this.where, "this instance publishes the events to NATS now (it took the publisher lease)");
    else this.options.log.info("another instance publishes the events to NATS now (this one lost the publisher lease)");
  }

  private async natsFailed(error: unknown): Promise<void> {
    if (!this.outage) {
      this.options.log.warn({ err: error, ...this.where }, "NATS publish failed; events wait in the outbox");
      this.outageSinceMs = Date.now();
      this.backOff();
    }
    this.outage = true;
    await this.disconnect();
  }

  /** The database failed (the feed, the stored position, the lease): NATS may be fine. */
  private feedFailed(error: unknown): void {
    if (!this.feedDown) {
      this.options.log.warn(
        { err: error },
        "the NATS publisher cannot read the event feed (database unreachable); events wait in the outbox",
      );
      this.backOff();
    }
    this.feedDown = true;
  }

  /** The first pause of a failure spell (tries then double up to OUTAGE_RETRY_MAX_MS). */
  private backOff(): void {
    if (!this.outage && !this.feedDown) this.retryMs = this.options.intervalMs;
  }

  /**
   * The interval, or news, between rounds; true when news (a local stamp) ended it. While NATS or
   * the database is down the tries back off (doubling up to OUTAGE_RETRY_MAX_MS) and news does
   * not cut the pause short: every commit pokes, and each try would open a connection.
   */
  private async pause(): Promise<boolean> {
    if (!this.outage && !this.feedDown) return this.wakeUp.wait(this.poll.waitMs);
    const until = Date.now() + this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, OUTAGE_RETRY_MAX_MS);
    while (!this.stopped && Date.now() < until) await this.wakeUp.wait(until - Date.now());
    return false;
  }

  /** The event as its message's cursor shows it (EVENTS_CURSOR_TAGS). */
  private cursorOf(event: FeedEvent): FeedEvent {
    return this.options.cursorTags === false ? { ...event, untagged: true } : event;
  }

  /** Where it sends: the stream and the subject prefix. */
  private get target(): string {
    return `${this.options.stream} ${this.options.subjectPrefix}`;
  }

  /**
   * Where a publisher that has just taken the lease starts, and now and then where it goes on: the
   * stored position, checked against the feed (feedRewoundUnder). A feed rewound under it is sent
   * again from the oldest kept event, with one error line: consumers drop what they had by event
   * id (JetStream too, inside its window), and nothing is skipped. Events sent up to the position to another stream or
   * subject prefix than this instance's are said in one warning: this one gets only what follows.
   */
  private async checkedPosition(): Promise<bigint> {
    const pool = this.database.pool;
    const mark = await publisherMarkChecked(pool, NATS_PUBLISHER);
    if (mark === null) return 0n;
    const { sent, top, prunedThrough } = mark;
    const facts = { position: sent.position.toString(), top: top.toString() };
    if (sent.target !== null && sent.target !== this.target) {
      this.options.log.warn(
        { ...facts, sentTo: sent.target, sendsTo: this.target },
        "the events up to the stored position were sent to another NATS stream or subject prefix; this one gets only the events after it",
      );
      await savePublisherTarget(pool, NATS_PUBLISHER, this.target);
    }
    if (!feedRewoundUnder(mark)) return sent.position;
    this.options.log.error(
      { ...facts, from: prunedThrough.toString() },
      "the event feed no longer holds the event the NATS publisher sent last (the database was restored from a backup under it?): sending every kept event again; consumers drop the ones they had by id",
    );
    await rewindPublisher(pool, NATS_PUBLISHER, prunedThrough, this.target);
    return prunedThrough;
  }

  /** Sends every stamped event not yet sent; false when it stopped short (lease lost, stopping). */
  private async publishAll(): Promise<boolean> {
    const pool = this.database.pool;
    // Checked when it takes the lease, and again now and then: a database restored under a running
    // instance rewinds the feed while it holds it.
    const due = Date.now() - this.checkedAtMs >= (this.options.recheckMs ?? MARK_RECHECK_MS);
    let position = due ? await this.checkedPosition() : await publisherPosition(pool, NATS_PUBLISHER);
    if (due) this.checkedAtMs = Date.now();
    this.options.onLag?.(Number((await lastPosition(pool)) - position));
    for (;;) {
      const js = await onNats(() => this.jetStream());
      // The lease is renewed between batches, after connecting: a long drain or a slow connect
      // must not outlive it (another instance would take over and publish beside this one).
      if (!(await this.lease.held())) return false;
      const batch = await readFeed(pool, { projectId: null, after: position, customerId: null, types: [] }, EVENT_READ_BATCH);
      if (this.stopped) return false;
      if (batch.length === 0) return true;
      // Sent in order on one connection, acknowledged together: the stream keeps their order.
      await onNats(() =>
        Promise.all(
          batch.map((event) =>
            js.publish(subjectOf(this.options.subjectPrefix, event), JSON.stringify(projectEventJson(this.cursorOf(event), "project")), {
              msgID: event.eventId,
              timeout: this.options.ackTimeoutMs ?? PUBLISH_ACK_TIMEOUT_MS,
              // Refused unless our stream stores it: another stream capturing the subjects would take it silently.
              expect: { streamName: this.options.stream },
            }),
          ),
        ),
      );
      const last = batch.at(-1) as FeedEvent;
      position = last.position;
      this.sent += batch.length;
      await savePublisherPosition(pool, NATS_PUBLISHER, { position, eventId: last.eventId, target: this.target });
      this.options.onLag?.(Number((await lastPosition(pool)) - position));
      if (batch.length < EVENT_READ_BATCH) return true;
    }
  }

  /**
   * The JetStream client, connecting and creating the stream when missing. An existing stream
   * must capture every subject we publish (`<prefix>.>`): one that captures only some would stop
   * the feed at the first event it does not take.
   */
  private async jetStream(): Promise<JetStreamClient> {
    if (this.client) return this.client;
    const { url, stream, subjectPrefix, log } = this.options;
    await natsGreets(url, CONNECT_TIMEOUT_MS);
    const nc = await connect({ servers: url, timeout: CONNECT_TIMEOUT_MS, maxReconnectAttempts: -1, name: "velobase-billing events" });
    this.connection = nc;
    const jsm = await jetstreamManager(nc, { timeout: CONNECT_TIMEOUT_MS });
    const ours = `${subjectPrefix}.>`;
    const subjects = await jsm.streams.info(stream).then(
      (info) => info.config.subjects ?? [],
      async (error: unknown) => {
        if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
        await jsm.streams.add({ name: stream, subjects: [ours] });
        log.info({ stream, subjects: [ours] }, "NATS stream created");
        return [ours];
      },
    );
    if (!subjects.some((filter) => capturesEvents(filter, subjectPrefix))) {
      throw new Error(`NATS stream ${stream} does not capture ${ours} (its subjects: ${subjects.join(", ") || "none"})`);
    }
    this.client = jetstream(nc);
    return this.client;
  }

  private async disconnect(): Promise<void> {
    const nc = this.connection;
    this.connection = null;
    this.client = null;
    await nc?.close().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeUp.poke();
    await this.loop;
    await this.disconnect();
    await this.lease.release();
  }
}
