import { randomBytes } from "node:crypto";
import type { ChildProcess } from "node:child_process";
import type { ServiceError } from "@grpc/grpc-js";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import mysql, { type Connection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/domain/api-key.js";
import type { EventJson } from "../../src/domain/events.js";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { NATS_PUBLISHER } from "../../src/operations/events/nats-publisher.js";
import { type Database, openDatabase } from "../../src/store/database.js";
import { hasUnstamped, lastPosition, publisherPosition } from "../../src/store/event-feed-store.js";
import { newEventId } from "../../src/store/event-rows.js";
import { appendEventsInTx } from "../support/events.js";
import { runTransaction } from "../../src/store/run-transaction.js";
import { ensureDeploymentId } from "../../src/store/settings-store.js";
import { TestClient } from "../support/client.js";
import { uniqueDatabaseUrl } from "../support/database.js";
import { lockWaitersOf, untilLockWaiters } from "../support/race.js";
import { collect, type Exit, spawnMain, waitForOutput } from "../support/spawn.js";
import { waitFor } from "../support/waiting.js";

/**
 * kill -9 of the publishing instance in the middle of a burst of real gRPC writes, then a restart
 * on the same database: the events in JetStream are exactly those of the writes that committed —
 * every answered write's, and a lost answer's only when its write committed (the database says) —
 * each once (duplicates the restarted publisher sends again are dropped by Nats-Msg-Id). The kill
 * comes while the publisher has sent a batch it has not stored yet (a test connection holds its
 * row in event_publishers) and committed events wait behind it, so both cases happen every run.
 */

const NATS_URL = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";
const tag = randomBytes(4).toString("hex");
const STREAM = `VB_CRASH_${tag}`;
const PREFIX = `vbcrash_${tag}`;
const CUSTOMERS = 10;
const SEED_AMOUNT = 1_000_000n;
const WRITERS = 8;
/** The kill comes once the publisher has sent this many of the burst's events. */
const KILL_AFTER_PUBLISHED = 200n;
/** The most calls the burst sends: the kill comes long before (the test fails if it does not). */
const BURST_MAX = 5_000;
/** How long a loop waits for the service before the test fails. */
const WAIT_MS = 60_000;

const API_KEY = generateApiKey("test");
const database = uniqueDatabaseUrl("vb_natscrash");
const env = {
  DATABASE_URL: database.url,
  GRPC_HOST: "127.0.0.1",
  GRPC_PORT: "0",
  SWEEP_INTERVAL_MS: "0",
  BOOTSTRAP_API_KEY: API_KEY,
  NATS_URL,
  NATS_STREAM: STREAM,
  NATS_SUBJECT_PREFIX: PREFIX,
};

type Kind = "deposit" | "deduct" | "freeze";
const EVENT_TYPE: Record<Kind, string> = { deposit: "ledger.deposit", deduct: "ledger.deduct", freeze: "ledger.freeze" };

/** One write sent; `id` is its transaction id (Deduct, Freeze) or idempotency key (Deposit). */
interface Call {
  readonly kind: Kind;
  readonly customerId: string;
  readonly id: string;
  outcome: "ok" | "lost" | "rolled back" | "in flight";
}

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  readonly client: TestClient;
}

let db: Database | null = null;
/** Holds the publisher's row in event_publishers at the kill. */
let holder: Connection | null = null;
let nc: NatsConnection;
let jsm: JetStreamManager;
const running = new Set<Running>();

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL });
  jsm = await jetstreamManager(nc);
});
afterAll(async () => {
  for (const r of running) {
    r.client.close();
    r.child.kill("SIGKILL");
    await r.exited;
  }
  await jsm?.streams.delete(STREAM).catch(() => undefined);
  await nc?.close();
  await holder?.end();
  await db?.close();
  await database.drop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts src/main.ts; its gRPC port (GRPC_PORT=0: a free one) is read from the listening line. */
async function startServer(): Promise<Running> {
  const child = spawnMain(env);
  const { output, exited } = collect(child);
  let port: string | undefined;
  try {
    await waitForOutput(() => output().stdout, "velobase-billing listening");
    port = /"port":(\d+)/.exec(output().stdout)?.[1];
    if (!port) throw new Error(`no gRPC port in the listening line:\n${output().stdout}`);
  } finally {
    // A server that did not start does not outlive the test.
    if (!port) {
      child.kill("SIGKILL");
      await exited;
    }
  }
  const r = { child, exited, client: new TestClient(Number(port), API_KEY) };
  running.add(r);
  return r;
}

async function stop(r: Running, signal: NodeJS.Signals): Promise<Exit> {
  r.client.close();
  r.child.kill(signal);
  const exit = await r.exited;
  running.delete(r);
  return exit;
}

function send(client: TestClient, call: Call): Promise<unknown> {
  const { customerId, id } = call;
  switch (call.kind) {
    case "deposit":
      return client.call("deposit", { customerId, idempotencyKey: id, amount: 7n });
    case "deduct":
      return client.call("deduct", { customerId, transactionId: id, amount: 3n });
    case "freeze":
      return client.call("freeze", { customerId, transactionId: id, amount: 5n });
  }
}

/** Waits, at most WAIT_MS, until every committed event is stamped and the publisher's position is the feed's top. */
async function publishedEverything(pool: Database["pool"], what: string): Promise<bigint> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const top = await lastPosition(pool);
    const sent = await publisherPosition(pool, NATS_PUBLISHER);
    if (top > 0n && sent === top && !(await hasUnstamped(pool))) return top;
    if (Date.now() > deadline) throw new Error(`${what}: not everything published within ${WAIT_MS} ms (top ${top}, sent ${sent})`);
    await sleep(50);
  }
}

/**
 * WRITERS writers send Deposits, Deducts and Freezes to `client` until `kill` has run, which
 * begins as soon as the publisher has sent KILL_AFTER_PUBLISHED events past `base` (the seeds):
 * the writers' calls still running then are in flight when the process dies.
 */
async function burstUntilKilled(client: TestClient, customers: readonly string[], base: bigint, kill: () => Promise<void>) {
  const calls: Call[] = [];
  let killedWithInFlight = -1;
  const inFlight = () => calls.filter((c) => c.outcome === "in flight").length;
  const writer = async (w: number) => {
    while (killedWithInFlight < 0 && calls.length < BURST_MAX) {
      const n = calls.length;
      const kind: Kind = n % 4 === 0 ? "deposit" : n % 4 === 1 ? "freeze" : "deduct";
      const call: Call = { kind, customerId: customers[n % customers.length] as string, id: `burst-${w}-${n}`, outcome: "in flight" };
      calls.push(call);
      call.outcome = await send(client, call).then(
        () => "ok" as const,
        (error: unknown) => {
          // No details: no answer from the server, the process died under the call.
          const { detail } = decodeStatusDetails((error as ServiceError).metadata);
          if (!detail) return "lost" as const;
          // Its transaction rolled back (it kept meeting others): answered, and not committed.
          if (detail.code === "service_unavailable") return "rolled back" as const;
          throw new Error(`${call.kind} ${call.id} refused: ${detail.code} ${detail.message}`);
        },
      );
    }
  };
  const watcher = async () => {
    while (killedWithInFlight < 0 && calls.length < BURST_MAX) {
      if ((await publisherPosition((db as Database).pool, NATS_PUBLISHER)) >= base + KILL_AFTER_PUBLISHED) {
        await kill();
        killedWithInFlight = inFlight();
      }
      await sleep(10);
    }
  };
  await Promise.all([watcher(), ...Array.from({ length: WRITERS }, (_, w) => writer(w))]);
  return { calls, killedWithInFlight };
}

/** Every message of the stream: its Nats-Msg-Id, subject and parsed body. */
async function streamMessages() {
  const info = await jsm.streams.info(STREAM);
  const list: Array<{ msgId: string; subject: string; body: EventJson }> = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(STREAM, { seq });
    if (m) list.push({ msgId: m.header?.get("Nats-Msg-Id") ?? "", subject: m.subject, body: m.json<EventJson>() });
  }
  return { count: info.state.messages, list };
}

type Rows = Array<Record<string, string | number | null>>;
const committedEvents = async (): Promise<number> => Number((await rows("SELECT COUNT(*) AS n FROM events"))[0]?.n);

async function rows(sql: string, params: unknown[] = []): Promise<Rows> {
  const [result] = await (db as Database).pool.query(sql, params);
  return result as Rows;
}

/** The writes that committed, as the database has them: transaction ids and deposit keys, with their event type. */
async function committedWrites(projectId: string): Promise<{ ids: Map<string, string>; depositKeys: Map<string, string> }> {
  const ids = new Map<string, string>();
  for (const r of await rows("SELECT transaction_id, kind FROM transactions WHERE project_id = ?", [projectId]))
    ids.set(String(r.transaction_id), r.kind === "FREEZE" ? "ledger.freeze" : "ledger.deduct");
  const depositKeys = new Map<string, string>();
  const deposits = await rows(
    `SELECT c.customer_id, l.sequence, l.idempotency_key FROM ledger_entries l JOIN customers c ON c.id = l.customer_pk
     WHERE l.project_id = ? AND l.operation = 'DEPOSIT'`,
    [projectId],
  );
  for (const r of deposits) {
    ids.set(String(r.idempotency_key), "ledger.deposit");
    depositKeys.set(`${r.customer_id}#${r.sequence}`, String(r.idempotency_key));
  }
  return { ids, depositKeys };
}

describe("the publisher killed mid-burst of real writes", () => {
  it("publishes, after a restart, the event of every write that committed exactly once in the stream, and none of a write that did not", async () => {
    const a = await startServer();
    db = await openDatabase(database.url, { poolSize: 4 });
    const customers = Array.from({ length: CUSTOMERS }, (_, i) => `crash-${i}`);
    for (const customerId of customers)
      await a.client.call("deposit", { customerId, idempotencyKey: `seed-${customerId}`, amount: SEED_AMOUNT });
    const base = await publishedEverything(db.pool, "the seed deposits");

    // An event whose transaction rolls back (the store's own append, left uncommitted): no real
    // write inserts its event and then rolls back short of a crash, so this is the sure case.
    const rolledBack = newEventId(await ensureDeploymentId(db.pool));
    await runTransaction(db, (tx) =>
      appendEventsInTx(tx, [
        {
          eventId: rolledBack,
          projectId: 1n,
          customerId: "crash-0",
          type: "ledger.deduct",
          transactionId: "rolled-back",
          payload: { entries: [], balanceAfter: null, data: {} },
          nowMs: Date.now(),
        },
      ]),
    );

    const held = await mysql.createConnection(database.url);
    holder = held;
    const kill = async () => {
      await held.query("BEGIN");
      try {
        await held.query("SELECT name FROM event_publishers WHERE name = ? FOR UPDATE", [NATS_PUBLISHER]);
        // Its next batch goes to the stream, then it waits to store the position past it.
        await untilLockWaiters(held, 1, "the publisher to wait to store its position");
        // The writes go on: events commit that the publisher has not sent.
        await waitFor(
          async () => (await committedEvents()) > (await jsm.streams.info(STREAM)).state.messages,
          "an event committed and not in the stream",
        );
      } catch (error) {
        await held.query("ROLLBACK");
        throw error;
      }
      a.child.kill("SIGKILL");
    };
    const { calls, killedWithInFlight } = await burstUntilKilled(a.client, customers, base, kill);
    expect(killedWithInFlight, `killed before ${BURST_MAX} calls, with calls in flight`).toBeGreaterThan(0);
    expect((await stop(a, "SIGKILL")).code, "killed by a signal").toBe(null);
    // The dead process's save still waits (the server notices its client gone only when it answers)
    // and would run once let go: ended, as if the process had died before sending it.
    const waiters = await lockWaitersOf(held);
    expect(waiters, "the dead publisher's save, waiting").toHaveLength(1);
    for (const id of waiters) await held.query(`KILL CONNECTION ${id}`);
    await held.query("ROLLBACK");
    expect(calls.filter((c) => c.outcome === "in flight")).toEqual([]);
    const atKill = {
      events: await committedEvents(),
      stamped: await lastPosition(db.pool),
      publisherPosition: await publisherPosition(db.pool, NATS_PUBLISHER),
      inStream: (await jsm.streams.info(STREAM)).state.messages,
    };
    // The cases the restart is for happened: committed events the publisher had not sent, and sent
    // ones it had not stored (positions are 1, 2, … in this database, so the stream held 1..inStream).
    expect(atKill.events, "committed events not in the stream at the kill").toBeGreaterThan(atKill.inStream);
    expect(atKill.inStream, "events in the stream past the publisher's stored position").toBeGreaterThan(Number(atKill.publisherPosition));

    const b = await startServer();
    // B takes the stamper's and the publisher's leases once A's expire, stamps and publishes.
    await publishedEverything(db.pool, "after the restart");
    const stream = await streamMessages();
    const events = await rows("SELECT event_id, project_id, type, transaction_id FROM events");
    const projectIds = new Set(events.map((e) => String(e.project_id)));
    expect(projectIds.size).toBe(1);
    const projectId = [...projectIds][0] as string;

    // The stream holds each committed event once: one message per events row, no other.
    const msgIds = stream.list.map((m) => m.msgId);
    expect(new Set(msgIds).size).toBe(msgIds.length);
    expect(stream.count).toBe(msgIds.length);
    expect([...msgIds].sort()).toEqual(events.map((e) => String(e.event_id)).sort());
    expect(msgIds).not.toContain(rolledBack);
    for (const { msgId, subject, body } of stream.list) {
      expect(body.id).toBe(msgId);
      expect(subject).toBe(`${PREFIX}.${projectId}.${body.type}`);
    }

    // Named by the write that made it: the same writes as the database's committed ones.
    const committed = await committedWrites(projectId);
    const published = stream.list.map(({ body }) => {
      const id =
        body.type === "ledger.deposit"
          ? committed.depositKeys.get(`${body.customer_id}#${body.entries[0]?.sequence}`)
          : (body.transaction_id ?? undefined);
      return `${id} ${body.type}`;
    });
    expect(published.sort()).toEqual([...committed.ids].map(([id, type]) => `${id} ${type}`).sort());
    const seeds = customers.map((c) => `seed-${c}`);
    expect([...committed.ids.keys()].filter((id) => !seeds.includes(id)).sort(), "every committed write was sent").toEqual(
      calls
        .filter((c) => committed.ids.has(c.id))
        .map((c) => c.id)
        .sort(),
    );
    for (const call of calls) {
      const event = committed.ids.get(call.id);
      if (call.outcome === "ok") expect(event, `${call.kind} ${call.id} answered OK`).toBe(EVENT_TYPE[call.kind]);
      else if (call.outcome === "rolled back") expect(event, `${call.kind} ${call.id} rolled back`).toBe(undefined);
      // A lost answer: its event is published if and only if its write committed (both sides above).
      else expect([undefined, EVENT_TYPE[call.kind]]).toContain(event);
    }

    expect((await stop(b, "SIGTERM")).code).toBe(0);
    const lost = calls.filter((c) => c.outcome === "lost");
    console.log("nats crash:", {
      calls: calls.length,
      ok: calls.filter((c) => c.outcome === "ok").length,
      lost: lost.length,
      rolledBack: calls.filter((c) => c.outcome === "rolled back").length,
      lostButCommitted: lost.filter((c) => committed.ids.has(c.id)).length,
      killedWithInFlight,
      committedWrites: committed.ids.size,
      events: events.length,
      atKill: { ...atKill, stamped: Number(atKill.stamped), publisherPosition: Number(atKill.publisherPosition) },
    });
  }, 120_000);
});
