/**
 * `npm run bench:events`: the event feed's lag, commit → event delivered to a WatchEvents
 * stream, at a fixed write rate (default 1,000 writes/s for 10 s; loopback only). Writes append
 * one event each, in their own transaction, through the store's real `appendEventsInTx`, from
 * two writers: one on the server's own instance (which nudges its stamper after COMMIT, as the
 * pipeline does) and one as another instance would (no nudge: the stamper's poll finds it).
 * Target: p99 ≤ 100 ms at 1,000 writes/s.
 *
 * Environment: EVENTS_BENCH_RATE (writes/s, default 1000), EVENTS_BENCH_SECONDS (10),
 * BENCH_DATABASE_SERVER (mysql://root@127.0.0.1:3306).
 */
import { randomBytes } from "node:crypto";
import { credentials, Metadata } from "@grpc/grpc-js";
import mysql from "mysql2/promise";
import pino from "pino";
import { EventServiceClient, type WatchEventsResponse } from "../gen/velobase/billing/v1/events.js";
import { startApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { generateApiKey } from "../src/domain/api-key.js";
import { appendEventsInTx, newEventId } from "../src/store/event-rows.js";
import { openDatabase } from "../src/store/database.js";
import { runTransaction } from "../src/store/run-transaction.js";

const RATE = Number(process.env.EVENTS_BENCH_RATE ?? 1000);
const SECONDS = Number(process.env.EVENTS_BENCH_SECONDS ?? 10);
const DB_SERVER = process.env.BENCH_DATABASE_SERVER ?? "mysql://root@127.0.0.1:3306";
/** Writes in flight at once per writer, at most (a write is one short transaction). */
const IN_FLIGHT_MAX = 64;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

async function main(): Promise<void> {
  const name = `vb_bench_events_${randomBytes(4).toString("hex")}`;
  const url = `${DB_SERVER}/${name}`;
  const apiKey = generateApiKey("test");
  const app = await startApp(
    loadConfig({
      DATABASE_URL: url,
      GRPC_HOST: "127.0.0.1",
      GRPC_PORT: "0",
      HTTP_PORT: "0",
      SWEEP_INTERVAL_MS: "0",
      BOOTSTRAP_API_KEY: apiKey,
    }),
    { log: pino({ level: "silent" }) },
  );
  const remote = await openDatabase(url, { poolSize: 20, migrate: false });
  const feed = app.context.events;
  if (!feed) throw new Error("the server has no event feed");
  const committedAt = new Map<string, number>();
  const lags: { local: number[]; remote: number[] } = { local: [], remote: [] };
  const origin = new Map<string, "local" | "remote">();

  const client = new EventServiceClient(`127.0.0.1:${app.port}`, credentials.createInsecure());
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${apiKey}`);
  const stream = client.watchEvents({ cursor: "", customerId: "", types: [] }, metadata);
  let delivered = 0;
  /** Events delivered before their writer saw its COMMIT return (lag ≤ 0). */
  const early = new Set<string>();
  stream.on("data", (r: WatchEventsResponse) => {
    const id = r.event?.id ?? "";
    const at = committedAt.get(id);
    const from = origin.get(id);
    delivered++;
    if (at === undefined || from === undefined) {
      early.add(id);
      return;
    }
    lags[from].push(performance.now() - at);
    committedAt.delete(id);
  });
  stream.on("error", () => undefined);

  const write = async (seq: number) => {
    const from = seq % 2 === 0 ? "local" : "remote";
    const eventId = newEventId(feed.deploymentId);
    const event = {
      eventId,
      projectId: 1n,
      customerId: `c${seq % 1000}`,
      type: "ledger.deduct" as const,
      transactionId: `t${seq}`,
      payload: { entries: [], balanceAfter: null, data: {} },
      nowMs: Date.now(),
    };
    await runTransaction(remote, (tx) => appendEventsInTx(tx, [event], { commit: true }));
    origin.set(eventId, from);
    if (early.delete(eventId)) lags[from].push(0);
    else committedAt.set(eventId, performance.now());
    if (from === "local") feed.notifyCommitted();
  };

  // Open loop at RATE: a write starts every 1000/RATE ms, whatever the previous ones do.
  const total = RATE * SECONDS;
  const started = performance.now();
  let inFlight = 0;
  let dropped = 0;
  const writes: Promise<void>[] = [];
  for (let seq = 0; seq < total; seq++) {
    const due = started + (seq * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (inFlight >= IN_FLIGHT_MAX * 2) {
      dropped++;
      continue;
    }
    inFlight++;
    writes.push(write(seq).finally(() => inFlight--));
  }
  await Promise.all(writes);
  const wrote = total - dropped;
  const settleDeadline = performance.now() + 10_000;
  while (delivered < wrote && performance.now() < settleDeadline) await new Promise((resolve) => setTimeout(resolve, 50));
  const seconds = (performance.now() - started) / 1000;

  const report = (label: string, values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return `${label}: ${sorted.length} events, p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${(sorted.at(-1) ?? 0).toFixed(1)} ms`;
  };
  const all = [...lags.local, ...lags.remote];
  process.stdout.write(
    [
      `feed lag at ${RATE} writes/s for ${SECONDS} s (${wrote} written, ${dropped} not started: over ${IN_FLIGHT_MAX * 2} in flight; ${delivered} delivered in ${seconds.toFixed(1)} s)`,
      report("  all", all),
      report("  local writes (nudged)", lags.local),
      report("  other instance's writes (polled)", lags.remote),
      `  target p99 <= 100 ms: ${
        percentile(
          [...all].sort((a, b) => a - b),
          99,
        ) <= 100
          ? "met"
          : "NOT met"
      }`,
      "",
    ].join("\n"),
  );
  stream.cancel();
  client.close();
  await remote.close();
  await app.stop();
  const admin = await mysql.createConnection(DB_SERVER);
  await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await admin.end();
}

await main();
