import { randomBytes } from "node:crypto";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import type { ProjectEventJson } from "../../src/domain/events.js";
import { LeaseKeeper } from "../../src/operations/events/lease-keeper.js";
import { NATS_PUBLISHER, NatsPublisher } from "../../src/operations/events/nats-publisher.js";
import { EVENT_READ_BATCH } from "../../src/domain/limits.js";
import { lastPosition, publisherPosition } from "../../src/store/event-feed-store.js";
import { commitEvents, testEvent } from "../support/events.js";
import { startTestServer, type TestServer } from "../support/server.js";

const NATS_URL = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";
const tag = randomBytes(4).toString("hex");
const STREAM = `VB_TEST_${tag}`;
const PREFIX = `vbtest_${tag}`;

let s: TestServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
const silent = pino({ level: "silent" });

beforeAll(async () => {
  s = await startTestServer();
  nc = await connect({ servers: NATS_URL });
  jsm = await jetstreamManager(nc);
});
afterAll(async () => {
  await jsm?.streams.delete(STREAM).catch(() => undefined);
  await nc?.close();
  await s?.stop();
});

const publisher = (owner: string, app: App = s.app) =>
  new NatsPublisher(app.database, new LeaseKeeper(app.database, NATS_PUBLISHER, owner), {
    url: NATS_URL,
    stream: STREAM,
    subjectPrefix: PREFIX,
    intervalMs: 20,
    idleIntervalMs: 20,
    log: silent,
  });

const until = async (check: () => boolean) => {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 20));
};

const streamCount = async () => Number((await jsm.streams.info(STREAM).catch(() => null))?.state.messages ?? 0);

/** Waits until the publisher has sent everything stamped so far (its stored position reaches the feed's top). */
async function caughtUp(): Promise<bigint> {
  for (;;) {
    const top = await lastPosition(s.app.database.pool);
    const sent = await publisherPosition(s.app.database.pool, NATS_PUBLISHER);
    if (top > 0n && sent === top) return top;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until these events are stamped (positions are the stamper's, after commit). */
async function stamped(events: readonly { eventId: string }[]): Promise<void> {
  for (;;) {
    const [rows] = await s.app.database.pool.query("SELECT COUNT(*) AS n FROM events WHERE position IS NOT NULL AND event_id IN (?)", [
      events.map((e) => e.eventId),
    ]);
    if (Number((rows as { n: number }[])[0]?.n) === events.length) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function storedMessages() {
  const count = await streamCount();
  const list = [];
  for (let seq = 1; seq <= count; seq++) {
    const m = await jsm.streams.getMessage(STREAM, { seq });
    if (m) list.push({ subject: m.subject, msgId: m.header?.get("Nats-Msg-Id") ?? "", body: m.json<ProjectEventJson>() });
  }
  return list;
}

describe("the NATS JetStream publisher", () => {
  it("publishes every stamped event once, in order, with its id as Nats-Msg-Id, and resumes from its stored position", async () => {
    const first = [1, 2, 3].map((n) =>
      testEvent(s.app, { customerId: "nats-1", type: n === 3 ? "balance.low" : "ledger.deduct", transactionId: `n${n}` }),
    );
    await commitEvents(s.app, first);
    await stamped(first);
    const one = publisher("owner-1");
    await caughtUp();
    await one.stop();

    let messages = await storedMessages();
    expect(messages.map((m) => [m.subject, m.msgId, m.body.id, m.body.transaction_id])).toEqual(
      first.map((e, i) => [`${PREFIX}.1.${i === 2 ? "balance.low" : "ledger.deduct"}`, e.eventId, e.eventId, e.transactionId]),
    );
    expect(messages[0]?.body).toMatchObject({
      type: "ledger.deduct",
      customer_id: "nats-1",
      project_id: "1",
      entries: [],
      balance_after: null,
    });

    // Committed while no publisher runs; then the one that resumes finds its stored position but
    // crashed before saving its last batch: it sends that batch again, JetStream drops the copies.
    const second = [4, 5].map((n) => testEvent(s.app, { customerId: "nats-1", type: "ledger.deposit", transactionId: `n${n}` }));
    await commitEvents(s.app, second);
    await stamped(second);
    const top = await publisherPosition(s.app.database.pool, NATS_PUBLISHER);
    await s.app.database.pool.query("UPDATE event_publishers SET position = ? WHERE name = ?", [String(top - 2n), NATS_PUBLISHER]);
    const two = publisher("owner-2");
    await caughtUp();
    await two.stop();
    messages = await storedMessages();
    expect(messages.map((m) => m.msgId)).toEqual([...first, ...second].map((e) => e.eventId));
    expect(await streamCount()).toBe(5);
  });

  it("JetStream drops a message whose Nats-Msg-Id it has seen", async () => {
    const [stored] = await storedMessages();
    if (!stored) throw new Error("expected a stored message");
    const ack = await jetstream(nc).publish(stored.subject, JSON.stringify(stored.body), { msgID: stored.msgId });
    expect(ack.duplicate).toBe(true);
    expect(await streamCount()).toBe(5);
  });

  it("only the lease holder publishes; a second publisher waits", async () => {
    const holder = publisher("owner-3");
    const waiting = publisher("owner-4");
    const events = [6, 7].map((n) => testEvent(s.app, { customerId: "nats-2", type: "ledger.freeze", transactionId: `n${n}` }));
    await commitEvents(s.app, events);
    await stamped(events);
    await caughtUp();
    const [rows] = await s.app.database.pool.query("SELECT owner FROM leases WHERE name = ?", [NATS_PUBLISHER]);
    const owner = (rows as { owner: string }[])[0]?.owner;
    await Promise.all([holder.stop(), waiting.stop()]);
    expect(["owner-3", "owner-4"]).toContain(owner);
    expect(await streamCount()).toBe(7);
    expect((await storedMessages()).map((m) => m.msgId).slice(5)).toEqual(events.map((e) => e.eventId));
  });
});

describe("a long drain", () => {
  it("stops between batches once its lease has passed to another instance", async () => {
    const pool = s.app.database.pool;
    const events = Array.from({ length: 20 * EVENT_READ_BATCH }, () =>
      testEvent(s.app, { customerId: "nats-drain", type: "ledger.deduct" }),
    );
    await commitEvents(s.app, events);
    await stamped(events);
    const start = await publisherPosition(pool, NATS_PUBLISHER);
    const top = await lastPosition(pool);
    const p = new NatsPublisher(s.app.database, new LeaseKeeper(s.app.database, NATS_PUBLISHER, "owner-drain", 300), {
      url: NATS_URL,
      stream: STREAM,
      subjectPrefix: PREFIX,
      intervalMs: 20,
      idleIntervalMs: 20,
      log: silent,
    });
    try {
      while ((await publisherPosition(pool, NATS_PUBLISHER)) < start + BigInt(EVENT_READ_BATCH)) await new Promise((r) => setTimeout(r, 5));
      await pool.query("UPDATE leases SET owner = 'owner-elsewhere', expires_at = NOW(3) + INTERVAL 1 MINUTE WHERE name = ?", [
        NATS_PUBLISHER,
      ]);
      // Once it has stopped moving, it stopped short of the end: the drain did not outlive the lease.
      let reached = await publisherPosition(pool, NATS_PUBLISHER);
      for (let before = -1n; reached !== before && reached < top; ) {
        before = reached;
        await new Promise((r) => setTimeout(r, 500));
        reached = await publisherPosition(pool, NATS_PUBLISHER);
      }
      expect(reached).toBeLessThan(top);
    } finally {
      await p.stop();
      await pool.query("DELETE FROM leases WHERE name = ?", [NATS_PUBLISHER]);
    }
    // The rest is sent by the next holder, so the tests after this one start caught up.
    const next = publisher("owner-after-drain");
    await caughtUp();
    await next.stop();
  });
});

describe("a feed rewound under the publisher (a database restored from a backup)", () => {
  type Line = { level: number; msg: string };
  const logged = () => {
    const lines: Line[] = [];
    return { lines, log: pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as Line) }) };
  };
  const publisherTo = (owner: string, log: pino.Logger, stream = STREAM, subjectPrefix = PREFIX) =>
    new NatsPublisher(s.app.database, new LeaseKeeper(s.app.database, NATS_PUBLISHER, owner), {
      url: NATS_URL,
      stream,
      subjectPrefix,
      intervalMs: 20,
      idleIntervalMs: 20,
      log,
    });
  const REWOUND =
    "the event feed no longer holds the event the NATS publisher sent last (the database was restored from a backup under it?): sending every kept event again; consumers drop the ones they had by id";

  it("another event at its position: it sends every kept event again, so the renumbered ones are not skipped", async () => {
    const pool = s.app.database.pool;
    const sent = [1, 2].map(() => testEvent(s.app, { customerId: "nats-restore", type: "ledger.deposit" }));
    await commitEvents(s.app, sent);
    await stamped(sent);
    const first = publisher("owner-restore-1");
    const top = await caughtUp();
    await first.stop();
    // The restore takes the feed back to before those two events; the next two get their positions.
    await pool.query("DELETE FROM events WHERE event_id IN (?)", [sent.map((e) => e.eventId)]);
    const renumbered = [1, 2].map(() => testEvent(s.app, { customerId: "nats-restore", type: "ledger.deduct" }));
    await commitEvents(s.app, renumbered);
    await stamped(renumbered);
    expect(await lastPosition(pool)).toBe(top);
    const before = await streamCount();

    const { lines, log } = logged();
    const next = publisherTo("owner-restore-2", log);
    await until(() => lines.some((l) => l.level >= 50));
    await caughtUp();
    await next.stop();
    expect(lines.filter((l) => l.level >= 40).map((l) => [l.level, l.msg])).toEqual([[50, REWOUND]]);
    // Every kept event went again; JetStream dropped those it had (inside its window), not the new two.
    expect(await streamCount()).toBe(before + 2);
    expect((await storedMessages()).slice(-2).map((m) => m.msgId)).toEqual(renumbered.map((e) => e.eventId));
  });

  it("rewound under a publisher that holds the lease (a restore under a running instance): found at its next check", async () => {
    const pool = s.app.database.pool;
    const { lines, log } = logged();
    const running = new NatsPublisher(s.app.database, new LeaseKeeper(s.app.database, NATS_PUBLISHER, "owner-rewound-live"), {
      url: NATS_URL,
      stream: STREAM,
      subjectPrefix: PREFIX,
      intervalMs: 20,
      idleIntervalMs: 20,
      recheckMs: 50,
      log,
    });
    try {
      const sent = [1, 2].map(() => testEvent(s.app, { customerId: "nats-restore-live", type: "ledger.deposit" }));
      await commitEvents(s.app, sent);
      await stamped(sent);
      await caughtUp();
      await pool.query("DELETE FROM events WHERE event_id IN (?)", [sent.map((e) => e.eventId)]);
      const renumbered = [1, 2].map(() => testEvent(s.app, { customerId: "nats-restore-live", type: "ledger.deduct" }));
      await commitEvents(s.app, renumbered);
      await stamped(renumbered);
      await until(() => lines.some((l) => l.level >= 50));
      await caughtUp();
      expect(lines.filter((l) => l.level >= 40).map((l) => [l.level, l.msg])).toEqual([[50, REWOUND]]);
      expect((await storedMessages()).slice(-2).map((m) => m.msgId)).toEqual(renumbered.map((e) => e.eventId));
    } finally {
      await running.stop();
    }
  });

  it("a position past the feed's top: the same; a position it stored itself and the feed still holds: none of it", async () => {
    const pool = s.app.database.pool;
    const top = await caughtUp();
    await pool.query("UPDATE event_publishers SET position = ? WHERE name = ?", [String(top + 5n), NATS_PUBLISHER]);
    const fresh = [testEvent(s.app, { customerId: "nats-restore", type: "ledger.freeze" })];
    const before = await streamCount();
    const { lines, log } = logged();
    const next = publisherTo("owner-restore-3", log);
    await until(() => lines.some((l) => l.level >= 50));
    await commitEvents(s.app, fresh);
    await stamped(fresh);
    await caughtUp();
    await next.stop();
    expect(lines.filter((l) => l.level >= 40).map((l) => [l.level, l.msg])).toEqual([[50, REWOUND]]);
    expect(await streamCount()).toBe(before + 1);
    expect((await storedMessages()).at(-1)?.msgId).toBe(fresh[0]?.eventId);

    // Caught up on an unchanged feed, the next holder resumes where it stood, saying nothing.
    const quiet = logged();
    const again = publisherTo("owner-restore-4", quiet.log);
    const more = [testEvent(s.app, { customerId: "nats-restore", type: "ledger.freeze" })];
    await commitEvents(s.app, more);
    await stamped(more);
    await caughtUp();
    await again.stop();
    expect(quiet.lines.filter((l) => l.level >= 40)).toEqual([]);
    expect(await streamCount()).toBe(before + 2);
  });

  it("another stream than the one the stored position was sent to: one warning, and it gets the events after it", async () => {
    const otherStream = `${STREAM}_B`;
    const otherPrefix = `${PREFIX}_b`;
    const { lines, log } = logged();
    try {
      await caughtUp();
      const elsewhere = publisherTo("owner-stream-b", log, otherStream, otherPrefix);
      const after = [testEvent(s.app, { customerId: "nats-stream-b", type: "ledger.deposit" })];
      await commitEvents(s.app, after);
      await stamped(after);
      await caughtUp();
      await elsewhere.stop();
      expect(lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([
        "the events up to the stored position were sent to another NATS stream or subject prefix; this one gets only the events after it",
      ]);
      expect((await jsm.streams.info(otherStream)).state.messages).toBe(1);
    } finally {
      await jsm.streams.delete(otherStream).catch(() => undefined);
    }
    // Back to our stream (said again, once), so that the tests after this one start from it.
    const back = logged();
    const home = publisherTo("owner-stream-home", back.log);
    await until(() => back.lines.some((l) => l.level >= 40));
    await caughtUp();
    await home.stop();
    expect(back.lines.filter((l) => l.level >= 40)).toHaveLength(1);
  });
});

describe("a NATS outage", () => {
  it("keeps events in the outbox with one warning, reports the lag, and sends them when NATS is back", async () => {
    const { TcpProxy } = await import("../support/tcp-proxy.js");
    const proxy = new TcpProxy(Number(new URL(NATS_URL).port || 4222), new URL(NATS_URL).hostname);
    await proxy.start();
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as { level: number; msg: string }) });
    const lags: number[] = [];
    const before = await streamCount();
    const p = new NatsPublisher(s.app.database, new LeaseKeeper(s.app.database, NATS_PUBLISHER, "owner-outage"), {
      url: `nats://127.0.0.1:${proxy.port}`,
      stream: STREAM,
      subjectPrefix: PREFIX,
      intervalMs: 20,
      idleIntervalMs: 20,
      ackTimeoutMs: 300,
      log,
      onLag: (lag) => lags.push(lag),
    });
    try {
      await caughtUp();
      await proxy.cut();
      const waiting = [1, 2].map(() => testEvent(s.app, { customerId: "nats-outage", type: "ledger.unfreeze" }));
      await commitEvents(s.app, waiting);
      await stamped(waiting);
      await until(() => lines.some((l) => l.msg.startsWith("NATS publish failed")));
      // Several more rounds fail while it is down: still one warning.
      const rounds = lags.length;
      await until(() => lags.length >= rounds + 5);
      expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual(["NATS publish failed; events wait in the outbox"]);
      expect(lags.at(-1)).toBe(2);
      expect(await streamCount()).toBe(before);

      await proxy.restore();
      await caughtUp();
      await until(() => lines.some((l) => l.msg === "NATS reachable again; publishing the waiting events"));
      expect((await storedMessages()).slice(-2).map((m) => m.msgId)).toEqual(waiting.map((e) => e.eventId));
      expect(await streamCount()).toBe(before + 2);
    } finally {
      await p.stop();
      await proxy.cut();
    }
  });
});

describe("a NATS server that hangs", () => {
  it("keeps the lease with the publisher that holds it while its tries time out, and sends everything once it answers", async () => {
    const { TcpProxy } = await import("../support/tcp-proxy.js");
    const proxy = new TcpProxy(Number(new URL(NATS_URL).port || 4222), new URL(NATS_URL).hostname);
    await proxy.start();
    const via = (owner: string) =>
      new NatsPublisher(s.app.database, new LeaseKeeper(s.app.database, NATS_PUBLISHER, owner), {
        url: `nats://127.0.0.1:${proxy.port}`,
        stream: STREAM,
        subjectPrefix: PREFIX,
        intervalMs: 20,
        idleIntervalMs: 20,
        ackTimeoutMs: 300,
        log: silent,
      });
    const leaseOwner = async () => {
      const [rows] = await s.app.database.pool.query("SELECT owner FROM leases WHERE name = ? AND expires_at > NOW(3)", [NATS_PUBLISHER]);
      return (rows as { owner: string }[])[0]?.owner ?? null;
    };
    const warm = [testEvent(s.app, { customerId: "nats-hung", type: "ledger.deposit" })];
    await commitEvents(s.app, warm);
    await stamped(warm);
    const first = via("owner-hung-1");
    const second = via("owner-hung-2");
    try {
      await caughtUp();
      const before = await streamCount();
      let holder = await leaseOwner();
      for (; holder === null; holder = await leaseOwner()) await new Promise((r) => setTimeout(r, 20));
      expect(["owner-hung-1", "owner-hung-2"]).toContain(holder);
      proxy.freeze();
      const waiting = [1, 2, 3].map(() => testEvent(s.app, { customerId: "nats-hung", type: "ledger.deduct" }));
      await commitEvents(s.app, waiting);
      await stamped(waiting);
      // Longer than the lease (5 s): its holder, alive, must keep it all along.
      const owners = new Set<string | null>();
      for (const end = Date.now() + 7_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) owners.add(await leaseOwner());
      expect([...owners]).toEqual([holder]);
      expect(await streamCount()).toBe(before);
      proxy.thaw();
      await caughtUp();
      expect((await storedMessages()).slice(-3).map((m) => m.msgId)).toEqual(waiting.map((e) => e.eventId));
      expect(await streamCount()).toBe(before + 3);
    } finally {
      proxy.thaw();
      await Promise.all([first.stop(), second.stop()]);
      await proxy.cut();
    }
  });
});

describe("the stream", () => {
  const logged = () => {
    const lines: { level: number; msg: string; err?: { message: string } }[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as (typeof lines)[number]) });
    return { lines, log };
  };
  const publishing = (log: pino.Logger, stream = STREAM) =>
    new NatsPublisher(s.app.database, new LeaseKeeper(s.app.database, NATS_PUBLISHER, `owner-${stream}`), {
      url: NATS_URL,
      stream,
      subjectPrefix: PREFIX,
      intervalMs: 20,
      idleIntervalMs: 20,
      log,
    });

  it("is the only one that may store our events: another capturing the subjects gets none, and ours is made again when gone", async () => {
    const { lines, log } = logged();
    const p = publishing(log);
    const other = `${STREAM}_OTHER`;
    try {
      await caughtUp();
      const before = await streamCount();
      await jsm.streams.delete(STREAM);
      await jsm.streams.add({ name: other, subjects: [`${PREFIX}.>`] });
      const event = testEvent(s.app, { customerId: "nats-stream", type: "ledger.deduct" });
      await commitEvents(s.app, [event]);
      await stamped([event]);
      await until(() => lines.some((l) => l.msg.startsWith("NATS publish failed")));
      expect((await jsm.streams.info(other)).state.messages).toBe(0);
      expect(await publisherPosition(s.app.database.pool, NATS_PUBLISHER)).toBeLessThan(await lastPosition(s.app.database.pool));

      await jsm.streams.delete(other);
      await caughtUp();
      expect(lines.some((l) => l.msg === "NATS stream created")).toBe(true);
      expect((await storedMessages()).map((m) => m.msgId)).toEqual([event.eventId]);
      expect(before).toBeGreaterThan(0);
    } finally {
      await p.stop();
      await jsm.streams.delete(other).catch(() => undefined);
    }
  });

  it("refuses, with one warning that says so, a stream of that name that does not capture every subject we publish", async () => {
    const { lines, log } = logged();
    const narrow = `${STREAM}_NARROW`;
    await jsm.streams.add({ name: narrow, subjects: [`${PREFIX}_narrow.*.ledger.deposit`] });
    const p = publishing(log, narrow);
    try {
      const event = testEvent(s.app, { customerId: "nats-narrow", type: "ledger.deposit" });
      await commitEvents(s.app, [event]);
      await until(() => lines.some((l) => l.level === 40));
      await new Promise((resolve) => setTimeout(resolve, 300));
      // (The first says this stream is not the one the earlier events went to.)
      expect(lines.filter((l) => l.level === 40).map((l) => l.err?.message ?? l.msg)).toEqual([
        "the events up to the stored position were sent to another NATS stream or subject prefix; this one gets only the events after it",
        `NATS stream ${narrow} does not capture ${PREFIX}.> (its subjects: ${PREFIX}_narrow.*.ledger.deposit)`,
      ]);
      expect((await jsm.streams.info(narrow)).state.messages).toBe(0);
    } finally {
      await p.stop();
      await jsm.streams.delete(narrow).catch(() => undefined);
    }
  });
});

describe("the server's own publisher", () => {
  it("a server with NATS_URL publishes through its own publisher", async () => {
    const other = await s.startAnotherInstance({ NATS_URL, NATS_STREAM: STREAM, NATS_SUBJECT_PREFIX: PREFIX });
    const event = testEvent(other, { customerId: "nats-3", type: "ledger.consume" });
    await commitEvents(other, [event]);
    await stamped([event]);
    await caughtUp();
    expect((await storedMessages()).at(-1)?.msgId).toBe(event.eventId);
  });
});
