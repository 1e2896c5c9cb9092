/**
 * `npm run bench:events`: the event feed's lag, commit → event delivered to a WatchEvents
 * stream, at a fixed write rate (default 1,000 writes/s for 10 s; loopback only). The server runs
 * in its own process (`src/main.ts` with tracing loaded, as `npm start`); this process writes and watches.
 *
 * EVENTS_BENCH_WRITES chooses the writes:
 *  - `outbox` (default): each write is one transaction appending one event through the store's
 *    real `appendEventsSql`, from this process, as another instance's write: the server's
 *    stamper finds it by its poll (EVENTS_POLL_INTERVAL_MS), the slower of the two paths;
 *  - `grpc`: real Deduct calls to the server (needs the pipeline's write side of events): its
 *    stamper is nudged after each COMMIT. Commit time is taken when the answer arrives.
 * Target: p99 ≤ 100 ms at 1,000 writes/s.
 *
 * The first EVENTS_BENCH_WARMUP_SECONDS (default 2) of writes are sent at the same rate but not
 * measured: they pay for the server's JIT, pools and caches warming up (their lag is printed apart).
 *
 * Environment: EVENTS_BENCH_RATE (writes/s, default 1000), EVENTS_BENCH_SECONDS (10, measured),
 * EVENTS_BENCH_WRITES (outbox | grpc), BENCH_DATABASE_SERVER (mysql://root@127.0.0.1:3306).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { credentials, Metadata } from "@grpc/grpc-js";
import mysql from "mysql2/promise";
import { EventServiceClient, type WatchEventsResponse } from "../gen/velobase/billing/v1/events.js";
import { BillingClient } from "../src/client/billing-client.js";
import { generateApiKey } from "../src/domain/api-key.js";
import { openDatabase } from "../src/store/database.js";
import { appendEventsSql, newEventId } from "../src/store/event-rows.js";
import { runTransaction } from "../src/store/run-transaction.js";
import { ensureDeploymentId } from "../src/store/settings-store.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RATE = Number(process.env.EVENTS_BENCH_RATE ?? 1000);
const SECONDS = Number(process.env.EVENTS_BENCH_SECONDS ?? 10);
const WARMUP_SECONDS = Number(process.env.EVENTS_BENCH_WARMUP_SECONDS ?? 2);
const WRITES = process.env.EVENTS_BENCH_WRITES === "grpc" ? "grpc" : "outbox";
const DB_SERVER = process.env.BENCH_DATABASE_SERVER ?? "mysql://root@127.0.0.1:3306";
/** Writes in flight at once, at most: a slower database drops writes rather than queue them. */
const IN_FLIGHT_MAX = 128;
const CUSTOMERS = 1000;

const percentile = (sorted: readonly number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

async function startServer(url: string, apiKey: string): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", "--import", "./src/telemetry/register.ts", "src/main.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: url,
      GRPC_HOST: "127.0.0.1",
      GRPC_PORT: String(port),
      HTTP_PORT: "0",
      BOOTSTRAP_API_KEY: apiKey,
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const probe = new BillingClient(`127.0.0.1:${port}`, credentials.createInsecure(), apiKey);
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null || attempt > 300) throw new Error("the server did not start");
    const up = await probe.call("getTransaction", { transactionId: "probe" }).then(
      () => true,
      (e: { code?: number }) => e.code !== 14,
    );
    if (up) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  probe.close();
  return { child, port };
}

async function main(): Promise<void> {
  const name = `vb_bench_events_${randomBytes(4).toString("hex")}`;
  const url = `${DB_SERVER}/${name}`;
  const apiKey = generateApiKey("test");
  const server = await startServer(url, apiKey);
  const db = await openDatabase(url, { poolSize: 32, migrate: false });
  const deploymentId = await ensureDeploymentId(db.pool);
  const billing = new BillingClient(`127.0.0.1:${server.port}`, credentials.createInsecure(), apiKey);
  if (WRITES === "grpc") {
    for (let c = 0; c < CUSTOMERS; c++) await billing.call("deposit", { customerId: `c${c}`, amount: 10n ** 12n });
  }

  const committedAt = new Map<string, number>();
  /** Events delivered before their writer saw its COMMIT return (lag ≤ 0). */
  const early = new Set<string>();
  const lags: number[] = [];
  /** The warm-up's writes (by key): their lag goes to warmupLags. */
  const warmupKeys = new Set<string>();
  const warmupLags: number[] = [];
  const record = (key: string, lag: number) => (warmupKeys.has(key) ? warmupLags : lags).push(lag);
  let delivered = 0;
  const watcher = new EventServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${apiKey}`);
  const stream = watcher.watchEvents({ cursor: "", customerId: "", types: ["ledger.deduct"] }, metadata);
  const keyOf = (r: WatchEventsResponse) => (WRITES === "grpc" ? (r.event?.transactionId ?? "") : (r.event?.id ?? ""));
  stream.on("data", (r: WatchEventsResponse) => {
    const key = keyOf(r);
    const at = committedAt.get(key);
    delivered++;
    if (at === undefined) early.add(key);
    else {
      record(key, performance.now() - at);
      committedAt.delete(key);
    }
  });
  stream.on("error", () => undefined);

  const committed = (key: string) => {
    if (early.delete(key)) record(key, 0);
    else committedAt.set(key, performance.now());
  };
  const write = async (seq: number) => {
    const customerId = `c${seq % CUSTOMERS}`;
    const transactionId = `t${seq}`;
    if (WRITES === "grpc") {
      if (seq < warmupWrites) warmupKeys.add(transactionId);
      await billing.call("deduct", { customerId, transactionId, amount: 1n });
      committed(transactionId);
      return;
    }
    const eventId = newEventId(deploymentId);
    if (seq < warmupWrites) warmupKeys.add(eventId);
    const event = {
      eventId,
      projectId: 1n,
      customerId,
      type: "ledger.deduct" as const,
      transactionId,
      payload: { entries: [], balanceAfter: null, data: {} },
      nowMs: Date.now(),
    };
    await runTransaction(db, (tx) => tx.run(appendEventsSql([event]), { commit: true }));
    committed(eventId);
  };

  // Open loop at RATE: a write starts every 1000/RATE ms, whatever the previous ones do.
  const warmupWrites = RATE * WARMUP_SECONDS;
  const total = warmupWrites + RATE * SECONDS;
  const started = performance.now();
  let inFlight = 0;
  let dropped = 0;
  const writes: Promise<void>[] = [];
  for (let seq = 0; seq < total; seq++) {
    const wait = started + (seq * 1000) / RATE - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (inFlight >= IN_FLIGHT_MAX) {
      dropped++;
      continue;
    }
    inFlight++;
    writes.push(write(seq).finally(() => inFlight--));
  }
  await Promise.all(writes);
  const wrote = total - dropped;
  const settle = performance.now() + 10_000;
  while (delivered < wrote && performance.now() < settle) await new Promise((resolve) => setTimeout(resolve, 50));
  const seconds = (performance.now() - started) / 1000;

  const sorted = [...lags].sort((a, b) => a - b);
  const p99 = percentile(sorted, 99);
  const warmup = [...warmupLags].sort((a, b) => a - b);
  process.stdout.write(
    [
      `feed lag, ${WRITES} writes at ${RATE}/s for ${WARMUP_SECONDS} s of warm-up then ${SECONDS} s measured: ${wrote} written (${dropped} not started: ${IN_FLIGHT_MAX} in flight), ${delivered} delivered in ${seconds.toFixed(1)} s`,
      `  warm-up: p50 ${percentile(warmup, 50).toFixed(1)} ms, p99 ${percentile(warmup, 99).toFixed(1)} ms (not counted)`,
      `  p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${(sorted.at(-1) ?? 0).toFixed(1)} ms; target p99 <= 100 ms: ${p99 <= 100 && delivered === wrote ? "met" : "NOT met"}`,
      "",
    ].join("\n"),
  );
  stream.cancel();
  watcher.close();
  billing.close();
  await db.close();
  const exited = new Promise((resolve) => server.child.once("exit", resolve));
  server.child.kill("SIGTERM");
  await exited;
  const admin = await mysql.createConnection(DB_SERVER);
  await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await admin.end();
}

await main();
