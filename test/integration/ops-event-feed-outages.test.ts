import { randomBytes } from "node:crypto";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import pino, { type Logger } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NewEvent } from "../../src/domain/events.js";
import { EventStamper, STAMPER_LEASE } from "../../src/operations/events/event-stamper.js";
import { LeaseKeeper } from "../../src/operations/events/lease-keeper.js";
import { NATS_PUBLISHER, NatsPublisher } from "../../src/operations/events/nats-publisher.js";
import { type Database, openDatabase } from "../../src/store/database.js";
import { appendEventsSql, newEventId } from "../../src/store/event-rows.js";
import { lastPosition, publisherPosition } from "../../src/store/event-feed-store.js";
import { runTransaction } from "../../src/store/run-transaction.js";
import { ensureDeploymentId } from "../../src/store/settings-store.js";
import { uniqueDatabaseUrl } from "../support/database.js";
import { commitEvents, testEvent } from "../support/events.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { TcpProxy } from "../support/tcp-proxy.js";
import { waitFor } from "../support/waiting.js";

// What an operator reads during the outages the on-call drills play (the database cut, NATS
// cut, the publisher's lease moving to another instance): each line says what failed, once, and
// each failure is followed by the line that says it is over.

const NATS_URL = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";
const NATS_PORT = Number(new URL(NATS_URL).port || 4222);
const NATS_HOST = new URL(NATS_URL).hostname;
const tag = randomBytes(4).toString("hex");
const STREAM = `VB_OPS_${tag}`;
const PREFIX = `vbops_${tag}`;

interface Line {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

function capturedLog(): { log: Logger; lines: Line[] } {
  const lines: Line[] = [];
  return { log: pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as Line) }), lines };
}

const said = (lines: readonly Line[]) => lines.map((l) => [l.level, l.msg]);

let s: TestServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
const proxies: TcpProxy[] = [];
const databases: Database[] = [];

beforeAll(async () => {
  s = await startTestServer({ METRICS_PORT: "0" });
  nc = await connect({ servers: NATS_URL });
  jsm = await jetstreamManager(nc);
  // Made here, so that no publisher's first line is "NATS stream created".
  await jsm.streams.add({ name: STREAM, subjects: [`${PREFIX}.>`] });
});
afterAll(async () => {
  for (const proxy of proxies) await proxy.cut();
  for (const database of databases) await database.close();
  await jsm?.streams.delete(STREAM).catch(() => undefined);
  await nc?.close();
  await s?.stop();
});

async function proxy(port: number, host = "127.0.0.1"): Promise<TcpProxy> {
  const p = new TcpProxy(port, host);
  await p.start();
  proxies.push(p);
  return p;
}

/** The test server's database, reached through a proxy the test can cut. */
async function databaseThrough(p: TcpProxy): Promise<Database> {
  const url = new URL(s.databaseUrl);
  url.port = String(p.port);
  const database = await openDatabase(url.toString(), { poolSize: 4 });
  databases.push(database);
  return database;
}

/** Waits until the publisher has sent everything stamped so far. */
async function caughtUp(): Promise<void> {
  await waitFor(async () => {
    const top = await lastPosition(s.app.database.pool);
    return top > 0n && (await publisherPosition(s.app.database.pool, NATS_PUBLISHER)) === top;
  }, "the publisher to send every stamped event");
}

async function commitOne(customerId: string): Promise<void> {
  await commitEvents(s.app, [testEvent(s.app, { customerId, type: "ledger.deduct" })]);
}

describe("the NATS publisher, as an operator reads it", () => {
  it("says a database outage is the database's, not NATS's, once, and says when it reads the feed again", async () => {
    const db = await proxy(3306);
    const { log, lines } = capturedLog();
    const proxied = await databaseThrough(db);
    const publisher = new NatsPublisher(proxied, new LeaseKeeper(proxied, NATS_PUBLISHER, "ops-db-outage"), {
      url: NATS_URL,
      stream: STREAM,
      subjectPrefix: PREFIX,
      intervalMs: 20,
      idleIntervalMs: 20,
      log,
    });
    try {
      await commitOne("ops-db-outage");
      await caughtUp();
      await db.cut();
      await waitFor(async () => lines.some((l) => l.level === 40), "a warning");
      await db.restore();
      await commitOne("ops-db-outage");
      await caughtUp();
      // An info line after the warning: the one that says the outage is over.
      await waitFor(
        async () => lines.some((l, i) => l.level === 30 && i > lines.findIndex((w) => w.level === 40)),
        "the line that says the outage is over",
      );
      expect(said(lines)).toEqual([
        [30, "this instance publishes the events to NATS now (it took the publisher lease)"],
        [40, "the NATS publisher cannot read the event feed (database unreachable); events wait in the outbox"],
        [30, "the NATS publisher reads the event feed again"],
      ]);
      expect(lines[0]).toMatchObject({ stream: STREAM, subjectPrefix: PREFIX, server: `${NATS_HOST}:${NATS_PORT}` });
      expect(lines[1]?.err).toMatchObject({ type: "Error" });
    } finally {
      await publisher.stop();
    }
  });

  it("names the NATS server in its outage warning, and closes a NATS outage when another instance takes the lease", async () => {
    const db = await proxy(3306);
    const nats = await proxy(NATS_PORT, NATS_HOST);
    const first = capturedLog();
    const second = capturedLog();
    // Short leases, so that the second instance takes over soon after the first stops renewing.
    const LEASE_MS = 900;
    const proxied = await databaseThrough(db);
    const one = new NatsPublisher(proxied, new LeaseKeeper(proxied, NATS_PUBLISHER, "ops-one", LEASE_MS), {
      url: `nats://user:secret@127.0.0.1:${nats.port}`,
      stream: STREAM,
      subjectPrefix: PREFIX,
      intervalMs: 20,
      idleIntervalMs: 20,
      ackTimeoutMs: 300,
      log: first.log,
    });
    let two: NatsPublisher | null = null;
    try {
      await commitOne("ops-lease-moves");
      await caughtUp();
      await nats.cut();
      await commitOne("ops-lease-moves");
      await waitFor(async () => first.lines.some((l) => l.msg === "NATS publish failed; events wait in the outbox"), "the NATS warning");
      // Started only now: with a rival from the start, a renewal the first instance made late under
      // load (the lease is 900 ms) handed it the lease before NATS was cut, and no warning came.
      two = new NatsPublisher(s.app.database, new LeaseKeeper(s.app.database, NATS_PUBLISHER, "ops-two", LEASE_MS), {
        url: NATS_URL,
        stream: STREAM,
        subjectPrefix: PREFIX,
        intervalMs: 20,
        idleIntervalMs: 20,
        log: second.log,
      });
      // The first instance cannot renew its lease: the second takes it and sends what waited.
      await db.cut();
      await caughtUp();
      await db.restore();
      await waitFor(
        async () => first.lines.some((l) => l.msg.startsWith("another instance publishes")),
        "the first instance to say it stopped",
      );
      const warning = first.lines.find((l) => l.msg === "NATS publish failed; events wait in the outbox");
      // Where it could not send to, without the URL's credentials.
      expect(warning).toMatchObject({ stream: STREAM, subjectPrefix: PREFIX, server: `127.0.0.1:${nats.port}` });
      expect(JSON.stringify(first.lines)).not.toContain("secret");
      expect(said(first.lines).at(-1)).toEqual([
        30,
        "another instance publishes the events to NATS now (this one lost the publisher lease)",
      ]);
      expect(said(second.lines)).toEqual([[30, "this instance publishes the events to NATS now (it took the publisher lease)"]]);
    } finally {
      await two?.stop();
      await one.stop();
    }
  });

  it("says in the lag gauge's help that an instance which does not publish shows 0", async () => {
    const text = await (await fetch(`http://127.0.0.1:${s.app.metricsPort}/metrics`)).text();
    expect(text).toContain(
      "# HELP billing_events_publish_lag Stamped events the NATS publisher has not sent yet, as the instance holding the publisher lease sees them; every other instance (and one without NATS_URL) shows 0: read the max over instances.",
    );
  });
});

describe("the event stamper, as an operator reads it", () => {
  const bare = uniqueDatabaseUrl("vb_ops_stamper");
  let direct: Database;
  beforeAll(async () => {
    direct = await openDatabase(bare.url, { poolSize: 4 });
  });
  afterAll(async () => {
    await direct?.close();
    await bare.drop();
  });

  async function commitBare(deploymentId: string): Promise<string> {
    const event: NewEvent = {
      eventId: newEventId(deploymentId),
      projectId: 1n,
      customerId: "ops-stamper",
      type: "ledger.deposit",
      transactionId: null,
      payload: { entries: [], balanceAfter: null, data: {} },
      nowMs: Date.now(),
    };
    await runTransaction(direct, (tx) => tx.run(appendEventsSql([event]), { commit: true }));
    return event.eventId;
  }

  const stamped = (eventId: string) =>
    waitFor(async () => {
      const [rows] = await direct.pool.query("SELECT position FROM events WHERE event_id = ?", [eventId]);
      return (rows as Array<{ position: unknown }>)[0]?.position != null;
    }, "the event to be stamped");

  it("says once that stamping failed, and once that it works again", async () => {
    const db = await proxy(3306);
    const url = new URL(bare.url);
    url.port = String(db.port);
    const proxied = await openDatabase(url.toString(), { poolSize: 4 });
    databases.push(proxied);
    const deploymentId = await ensureDeploymentId(direct.pool);
    const { log, lines } = capturedLog();
    const stamper = new EventStamper(proxied, new LeaseKeeper(proxied, STAMPER_LEASE, "ops-stamper"), {
      intervalMs: 20,
      idleIntervalMs: 20,
      spacingMs: 0,
      log,
    });
    try {
      await stamped(await commitBare(deploymentId));
      await db.cut();
      await waitFor(async () => lines.some((l) => l.level === 40), "the stamping warning");
      await db.restore();
      await stamped(await commitBare(deploymentId));
      await waitFor(async () => lines.length >= 2, "the line that says stamping works again");
      expect(said(lines)).toEqual([
        [40, "event stamping failed; retrying"],
        [30, "event stamping works again"],
      ]);
    } finally {
      await stamper.stop();
    }
  });
});
