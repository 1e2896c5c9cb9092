import { randomBytes } from "node:crypto";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/domain/api-key.js";
import type { NewEvent } from "../../src/domain/events.js";
import { NATS_PUBLISHER } from "../../src/operations/events/nats-publisher.js";
import { type Database, openDatabase } from "../../src/store/database.js";
import { hasUnstamped, lastPosition, publisherPosition } from "../../src/store/event-feed-store.js";
import { appendEventsInTx, newEventId } from "../../src/store/event-rows.js";
import { runTransaction } from "../../src/store/run-transaction.js";
import { ensureDeploymentId } from "../../src/store/settings-store.js";
import { uniqueDatabaseUrl } from "../support/database.js";
import { collect, spawnMain, waitForOutput } from "../support/spawn.js";

/**
 * kill -9 of the publishing instance in the middle of a burst, then a restart: every committed
 * event reaches JetStream at least once (counted by distinct Nats-Msg-Id), an event whose
 * transaction rolled back never does. Events are appended through the store's real functions in
 * real transactions, as the writes append them.
 */

const NATS_URL = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";
const tag = randomBytes(4).toString("hex");
const STREAM = `VB_CRASH_${tag}`;
const PREFIX = `vbcrash_${tag}`;
const BURST = 600;
const PER_TRANSACTION = 3;
const IN_FLIGHT = 8;

const database = uniqueDatabaseUrl();
let db: Database;
let nc: NatsConnection;
let jsm: JetStreamManager;

const env = {
  DATABASE_URL: database.url,
  GRPC_HOST: "127.0.0.1",
  GRPC_PORT: "0",
  SWEEP_INTERVAL_MS: "0",
  BOOTSTRAP_API_KEY: generateApiKey("test"),
  NATS_URL,
  NATS_STREAM: STREAM,
  NATS_SUBJECT_PREFIX: PREFIX,
};

async function startServer() {
  const child = spawnMain(env);
  const running = collect(child);
  await waitForOutput(() => running.output().stdout, "velobase-billing listening");
  return { child, ...running };
}

beforeAll(async () => {
  db = await openDatabase(database.url, { poolSize: IN_FLIGHT + 2 });
  nc = await connect({ servers: NATS_URL });
  jsm = await jetstreamManager(nc);
});
afterAll(async () => {
  await jsm?.streams.delete(STREAM).catch(() => undefined);
  await nc?.close();
  await db?.close();
  await database.drop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("the publisher killed mid-burst", () => {
  it("sends every committed event at least once after a restart, and never one that rolled back", async () => {
    const first = await startServer();
    const deploymentId = await ensureDeploymentId(db.pool);
    const event = (n: number): NewEvent => ({
      eventId: newEventId(deploymentId),
      projectId: 1n,
      customerId: `crash-${n % 10}`,
      type: "ledger.deduct",
      transactionId: `crash-${n}`,
      payload: { entries: [], balanceAfter: null, data: {} },
      nowMs: Date.now(),
    });
    const committed: string[] = [];
    let next = 0;
    let killed = false;
    const writer = async () => {
      while (next < BURST) {
        const batch = Array.from({ length: PER_TRANSACTION }, () => event(next++));
        await runTransaction(db, (tx) => appendEventsInTx(tx, batch, { commit: true }));
        committed.push(...batch.map((e) => e.eventId));
        // Once the publisher has sent some of them, it dies with the rest in flight.
        if (!killed && (await publisherPosition(db.pool, NATS_PUBLISHER)) > 0n) {
          killed = true;
          first.child.kill("SIGKILL");
        }
      }
    };
    // An event whose transaction rolls back: it must never be published.
    const rolledBack = event(-1);
    await runTransaction(db, (tx) => appendEventsInTx(tx, [rolledBack]));
    await Promise.all(Array.from({ length: IN_FLIGHT }, writer));
    expect(killed).toBe(true);
    expect((await first.exited).code).toBe(null);

    const second = await startServer();
    try {
      // The new instance takes both leases once the dead one's expire, stamps and publishes.
      for (;;) {
        const top = await lastPosition(db.pool);
        const unstamped = await hasUnstamped(db.pool);
        if (!unstamped && top > 0n && (await publisherPosition(db.pool, NATS_PUBLISHER)) === top) break;
        await sleep(50);
      }
      const info = await jsm.streams.info(STREAM);
      const ids = new Set<string>();
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(STREAM, { seq });
        const id = m?.header?.get("Nats-Msg-Id");
        if (id) ids.add(id);
      }
      expect(ids.size).toBe(committed.length);
      expect([...ids].sort()).toEqual([...committed].sort());
      expect(ids.has(rolledBack.eventId)).toBe(false);
      // JetStream dropped what the restarted publisher sent again: one message per event.
      expect(info.state.messages).toBe(committed.length);
    } finally {
      second.child.kill("SIGTERM");
      await second.exited;
    }
  });
});
