/**
 * `npm run bench:scaling`: throughput of 1 and 2 instances on one database server and of 2
 * instances on a 3-node Galera cluster (scripts/galera.sh, started when not running), at 64 calls
 * in flight, uniform over many customers and on one hot customer; then the failover gap: the
 * longest time without a successful call when a node is killed (kill -9) under load. Servers
 * start as `npm start` does (tracing loaded, no exporter). Results go to standard output as a
 * markdown table (docs/scaling.md keeps the measured ones).
 *
 * Environment: BENCH_SECONDS (per run, default 10), BENCH_CUSTOMERS (1000), GALERA_DIR (as for
 * npm run test:galera), BENCH_DATABASE_SERVER (mysql://root@127.0.0.1:3306), BENCH_LOG_FILE,
 * BENCH_ONLY (one setup: single-1, single-2, cluster-1, cluster-2, latency (1 in flight on one
 * server and on the cluster) or failover).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { credentials } from "@grpc/grpc-js";
import mysql from "mysql2/promise";
import { BillingClient } from "../src/client/billing-client.js";
import { benchKey } from "./bench-key.js";
import { runLoad, type LoadResult } from "./load.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 1000);
const IN_FLIGHT = 64;
const SINGLE = process.env.BENCH_DATABASE_SERVER ?? "mysql://root@127.0.0.1:3306";
const GALERA_DIR = process.env.GALERA_DIR ?? join(tmpdir(), "velobase-galera");
/** BENCH_LOG_FILE: the servers' log lines are appended there (dropped otherwise). */
const LOG_FILE = process.env.BENCH_LOG_FILE ?? null;
const clusterHosts = (order: number[]) => order.map((n) => `127.0.0.1:${3310 + n}`).join(",");

interface Instance {
  readonly child: ChildProcess;
  readonly client: BillingClient;
}

async function startInstance(databaseUrl: string, apiKey: string): Promise<Instance> {
  const child = spawn(process.execPath, ["--import", "tsx", "--import", "./src/telemetry/register.ts", "src/main.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      GRPC_HOST: "127.0.0.1",
      GRPC_PORT: "0",
      HTTP_PORT: "0",
      LOG_LEVEL: "info",
      DB_POOL_SIZE: "32",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
      const match = /"port":(\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.on("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  if (LOG_FILE) child.stdout?.on("data", (d: Buffer) => appendFileSync(LOG_FILE, d));
  child.stdout?.resume();
  return { child, client: new BillingClient(`127.0.0.1:${port}`, credentials.createInsecure(), apiKey) };
}

async function stopInstance(instance: Instance): Promise<void> {
  instance.client.close();
  const exited = new Promise((resolve) => instance.child.on("exit", resolve));
  instance.child.kill("SIGTERM");
  await exited;
}

async function dropDatabase(serverUrl: string, name: string): Promise<void> {
  const connection = await mysql.createConnection(serverUrl);
  await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await connection.end();
}

/** Every customer gets credits for the whole run. */
async function seed(instances: readonly Instance[]): Promise<void> {
  let next = 0;
  await runLoad({
    concurrency: IN_FLIGHT,
    durationMs: 600_000,
    maxOps: CUSTOMERS,
    operation: async () => {
      const i = next++;
      const client = (instances[i % instances.length] as Instance).client;
      await client.call("deposit", { customerId: `c${i}`, amount: 10n ** 12n, idempotencyKey: `seed-${i}` });
    },
  });
}

/** Deducts of 1 credit, calls spread evenly over the instances. */
function deducts(instances: readonly Instance[], hot: boolean, runId: string, concurrency = IN_FLIGHT): Promise<LoadResult> {
  return runLoad({
    concurrency,
    durationMs: SECONDS * 1000,
    maxOps: 5_000_000,
    operation: async (seq) => {
      const client = (instances[seq % instances.length] as Instance).client;
      const customerId = hot ? "c0" : `c${Math.floor(Math.random() * CUSTOMERS)}`;
      await client.call("deduct", { customerId, transactionId: `${runId}-${seq}`, amount: 1n });
    },
  });
}

interface Row {
  readonly setup: string;
  readonly distribution: "uniform" | "hot";
  readonly result: LoadResult;
}

async function measure(
  setup: string,
  urls: readonly string[],
  serverUrl: string,
  database: string,
  rows: Row[],
  concurrency = IN_FLIGHT,
): Promise<void> {
  const apiKey = await benchKey(urls[0] as string);
  const instances: Instance[] = [];
  for (const url of urls) instances.push(await startInstance(url, apiKey));
  try {
    await seed(instances);
    for (const distribution of concurrency === 1 ? (["uniform"] as const) : (["uniform", "hot"] as const)) {
      const result = await deducts(instances, distribution === "hot", `${database}-${distribution}`, concurrency);
      rows.push({ setup, distribution, result });
      console.error(
        `${setup} ${distribution}: ${result.opsPerSecond.toFixed(0)}/s p50 ${result.p50Ms.toFixed(1)} ms p99 ${result.p99Ms.toFixed(1)} ms errors ${result.errors}${result.firstError ? ` (${result.firstError})` : ""}`,
      );
    }
  } finally {
    for (const instance of instances) await stopInstance(instance);
    await dropDatabase(serverUrl, database);
  }
}

/** Deposits at IN_FLIGHT over two instances on the cluster; node 1 is killed a third into the run. */
async function failover(): Promise<{ gapMs: number; ok: number; unavailable: number }> {
  const database = `vb_bench_failover_${Date.now().toString(36)}`;
  const urls = [`mysql://root@${clusterHosts([1, 2, 3])}/${database}`, `mysql://root@${clusterHosts([2, 3, 1])}/${database}`];
  const apiKey = await benchKey(urls[0] as string);
  const instances = [await startInstance(urls[0] as string, apiKey), await startInstance(urls[1] as string, apiKey)];
  const answers: number[] = [];
  let unavailable = 0;
  try {
    const killer = (async () => {
      await sleep((SECONDS * 1000) / 3);
      const pid = Number(readFileSync(join(GALERA_DIR, "n1", "mariadbd.pid"), "utf8").trim());
      process.kill(pid, "SIGKILL");
    })();
    await runLoad({
      concurrency: IN_FLIGHT,
      durationMs: SECONDS * 1000,
      maxOps: 5_000_000,
      operation: async (seq) => {
        const client = (instances[seq % 2] as Instance).client;
        try {
          await client.call("deposit", { customerId: `c${seq % CUSTOMERS}`, amount: 1n, idempotencyKey: `f-${seq}` });
          answers.push(performance.now());
        } catch (error) {
          unavailable++;
          await sleep(20);
          throw error;
        }
      },
    });
    await killer;
  } finally {
    for (const instance of instances) await stopInstance(instance);
    await dropDatabase(`mysql://root@127.0.0.1:3312`, database);
    execFileSync("bash", [join(ROOT, "scripts/galera.sh"), "join", GALERA_DIR, "1"], { stdio: "inherit" });
  }
  answers.sort((a, b) => a - b);
  const gapMs = answers.slice(1).reduce((max, t, i) => Math.max(max, t - (answers[i] as number)), 0);
  return { gapMs, ok: answers.length, unavailable };
}

const ONLY = process.env.BENCH_ONLY ?? null;
const wanted = (setup: string) => ONLY === null || ONLY === setup;

async function main(): Promise<void> {
  execFileSync("bash", [join(ROOT, "scripts/galera.sh"), "up", GALERA_DIR], { stdio: "inherit" });
  const rows: Row[] = [];
  const stamp = Date.now().toString(36);
  const single = `vb_bench_single_${stamp}`;
  if (wanted("single-1")) await measure("1 instance, 1 server", [`${SINGLE}/${single}`], SINGLE, single, rows);
  const single2 = `${single}_2`;
  if (wanted("single-2")) await measure("2 instances, 1 server", [`${SINGLE}/${single2}`, `${SINGLE}/${single2}`], SINGLE, single2, rows);
  const cluster1 = `vb_bench_cluster_${stamp}_1`;
  const node1 = "mysql://root@127.0.0.1:3311";
  if (wanted("cluster-1"))
    await measure("1 instance, 3-node cluster", [`mysql://root@${clusterHosts([1, 2, 3])}/${cluster1}`], node1, cluster1, rows);
  const cluster2 = `vb_bench_cluster_${stamp}_2`;
  const cluster2Urls = [`mysql://root@${clusterHosts([1, 2, 3])}/${cluster2}`, `mysql://root@${clusterHosts([2, 3, 1])}/${cluster2}`];
  if (wanted("cluster-2")) await measure("2 instances, 3-node cluster (nodes 1 and 2)", cluster2Urls, node1, cluster2, rows);
  // One call at a time: what a write costs on each, without queueing.
  if (wanted("latency")) {
    const alone = `vb_bench_alone_${stamp}`;
    await measure("1 instance, 1 server, 1 in flight", [`${SINGLE}/${alone}`], SINGLE, alone, rows, 1);
    await measure("1 instance, 3-node cluster, 1 in flight", [`mysql://root@${clusterHosts([1, 2, 3])}/${alone}`], node1, alone, rows, 1);
  }
  const gap = wanted("failover") ? await failover() : null;
  console.log(`Deducts of 1 credit, ${IN_FLIGHT} in flight, ${SECONDS} s per run, ${CUSTOMERS} customers (uniform) or one (hot).\n`);
  console.log("| setup | distribution | calls/s | p50 ms | p99 ms | errors |");
  console.log("|---|---|---:|---:|---:|---:|");
  for (const { setup, distribution, result } of rows) {
    console.log(
      `| ${setup} | ${distribution} | ${result.opsPerSecond.toFixed(0)} | ${result.p50Ms.toFixed(1)} | ${result.p99Ms.toFixed(1)} | ${result.errors} |`,
    );
  }
  if (gap)
    console.log(
      `\nFailover (deposits, ${IN_FLIGHT} in flight over 2 instances, node 1 killed): longest gap between successful calls ${gap.gapMs.toFixed(0)} ms; ${gap.ok} calls succeeded, ${gap.unavailable} answered service_unavailable.`,
    );
}

await main();
