/**
 * `npm run bench`: starts our server and the baseline server on fresh databases (loopback only),
 * seeds customers, runs every scenario for a fixed time at concurrencies 1, 16 and 64 over a
 * uniform and a one-hot-customer distribution, measures cost growth (1 vs 200 accounts, 1 vs
 * millions of ledger rows), and writes the results to bench/results/ as JSON and markdown.
 *
 * Environment: BENCH_SECONDS (per run, default 5), BENCH_CUSTOMERS (10000),
 * BENCH_LEDGER_ROWS (5000000), BENCH_GROWTH=0 to skip the cost-growth part, BENCH_SCENARIOS
 * (comma-separated subset of deposit,deduct,freeze,freeze+consume,mixed,batch), BENCH_REPEATS (2),
 * BENCH_WARMUP_SECONDS (1: an unrecorded run of each server before each compared case),
 * BENCH_DATABASE_SERVER (mysql://root@127.0.0.1:3306), BENCH_SERVER_NODE_ARGS (node flags for both servers),
 * BENCH_TRACING=off (ours without src/telemetry/register.ts; by default it starts as `npm start` does),
 * BENCH_CONCURRENCIES (1,16,64), BENCH_DISTRIBUTIONS (uniform,hot), BENCH_OUTBOX=0 to skip the
 * outbox comparison (a third server, ours with EVENTS_OUTBOX=off, alternating with ours on
 * Freeze and Freeze+Consume: what the change feed's outbox costs).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, openSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import mysql from "mysql2/promise";
import { credentials } from "@grpc/grpc-js";
import { BillingClient } from "../src/client/billing-client.js";
import { benchKey } from "./bench-key.js";
import { runLoad, type LoadResult } from "./load.js";
import { cpuPercent, sampleProcess } from "./process-stats.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 10_000);
const LEDGER_ROWS = Number(process.env.BENCH_LEDGER_ROWS ?? 5_000_000);
const GROWTH = process.env.BENCH_GROWTH !== "0";
/** Comma-separated subset of scenarios to run (default: all). */
const ONLY = process.env.BENCH_SCENARIOS?.split(",") ?? null;
const wanted = (scenario: string) => ONLY === null || ONLY.includes(scenario);
const DB_SERVER = process.env.BENCH_DATABASE_SERVER ?? "mysql://root@127.0.0.1:3306";
const ALL_DISTRIBUTIONS = ["uniform", "hot"] as const;
/** BENCH_CONCURRENCIES and BENCH_DISTRIBUTIONS narrow a run (e.g. "64" and "uniform" to profile one case). */
const CONCURRENCIES = process.env.BENCH_CONCURRENCIES?.split(",").map(Number) ?? [1, 16, 64];
const DISTRIBUTIONS = ALL_DISTRIBUTIONS.filter((d) => process.env.BENCH_DISTRIBUTIONS?.split(",").includes(d) ?? true);
const MAX_OPS_PER_RUN = 500_000;
const REPEATS = Number(process.env.BENCH_REPEATS ?? 2);
/** Seconds each server runs a case unrecorded before its measured runs (BENCH_WARMUP_SECONDS). */
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
const OUTBOX_COMPARED = process.env.BENCH_OUTBOX !== "0";
/** Extra node flags for both servers, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile them. */
const SERVER_NODE_ARGS = process.env.BENCH_SERVER_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
/** Ours starts as `npm start` does: tracing loaded (spans made, no exporter). */
const OURS_NODE_ARGS = process.env.BENCH_TRACING === "off" ? [] : ["--import", "./src/telemetry/register.ts"];
const SEED_CREDITS = 10n ** 12n;

type Distribution = (typeof ALL_DISTRIBUTIONS)[number];

interface Row {
  readonly server: "ours" | "baseline" | "ours-no-outbox";
  readonly scenario: string;
  readonly distribution: Distribution | "-";
  readonly concurrency: number;
  readonly result: LoadResult;
  readonly serverCpuPercent: number;
  readonly serverRssMb: number;
  /** Database server CPU per operation, in milliseconds (mariadbd/mysqld found by name). */
  readonly dbCpuMsPerOp: number | null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

async function waitUntilServing(client: BillingClient, child: ChildProcess): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const answered = await client.call("getTransaction", { transactionId: "probe" }).then(
      () => true,
      (e: { code?: number }) => e.code !== 14, // 14 = UNAVAILABLE: not listening yet
    );
    if (answered) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("server did not start");
}

interface Started {
  readonly child: ChildProcess;
  readonly client: BillingClient;
}

async function startProcess(
  script: string,
  env: Record<string, string>,
  apiKey: string | null = null,
  nodeArgs: string[] = [],
): Promise<Started> {
  const port = await freePort();
  const devNull = openSync("/dev/null", "w");
  const child = spawn(process.execPath, [...SERVER_NODE_ARGS, "--import", "tsx", ...nodeArgs, script], {
    cwd: ROOT,
    env: { ...process.env, ...env, GRPC_HOST: "127.0.0.1", GRPC_PORT: String(port), HTTP_PORT: "0", PORT: String(port) },
    stdio: ["ignore", devNull, "inherit"],
  });
  const client = new BillingClient(`127.0.0.1:${port}`, credentials.createInsecure(), apiKey);
  await waitUntilServing(client, child);
  return { child, client };
}

async function stopProcess({ child, client }: Started): Promise<void> {
  client.close();
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

const pick = (distribution: Distribution, seq: number) =>
  distribution === "hot" ? "c0" : `c${(seq * 7919 + Math.floor(Math.random() * CUSTOMERS)) % CUSTOMERS}`;

/** One operation of each scenario, against either server; keys are unique per run. */
function scenarioOperation(client: BillingClient, scenario: string, distribution: Distribution, runId: string) {
  const freezeConsume = async (seq: number) => {
    const transactionId = `${runId}-${seq}`;
    await client.call("freeze", { customerId: pick(distribution, seq), transactionId, amount: 2n });
    await client.call("consume", { transactionId, actualAmount: 1n });
  };
  switch (scenario) {
    case "deposit":
      return (seq: number) =>
        client
          .call("deposit", { customerId: pick(distribution, seq), amount: 1n, idempotencyKey: `${runId}-${seq}` })
          .then(() => undefined);
    case "deduct":
      return (seq: number) =>
        client.call("deduct", { customerId: pick(distribution, seq), transactionId: `${runId}-${seq}`, amount: 1n }).then(() => undefined);
    case "freeze":
      return (seq: number) =>
        client.call("freeze", { customerId: pick(distribution, seq), transactionId: `${runId}-${seq}`, amount: 1n }).then(() => undefined);
    case "freeze+consume":
      return freezeConsume;
    case "mixed":
      return async (seq: number) => {
        const dice = seq % 10;
        if (dice < 7) return freezeConsume(seq);
        if (dice < 9) {
          await client.call("deduct", { customerId: pick(distribution, seq), transactionId: `${runId}-${seq}`, amount: 1n });
          return;
        }
        await client.call("getCustomer", { customerId: pick(distribution, seq) });
      };
    default:
      throw new Error(`unknown scenario ${scenario}`);
  }
}

let runCounter = 0;

async function measure(
  server: Row["server"],
  started: Started,
  scenario: string,
  distribution: Distribution,
  concurrency: number,
  seconds = SECONDS,
  /** false: a warm-up, not printed. */
  recorded = true,
): Promise<Row> {
  const runId = `${server}-${scenario.replace("+", "_")}-${distribution}-${concurrency}-${++runCounter}-${Date.now().toString(36)}`;
  const pid = started.child.pid ?? 0;
  const dbPid = databasePid();
  const dbBefore = dbPid === null ? null : sampleProcess(dbPid);
  const before = sampleProcess(pid);
  const result = await runLoad({
    concurrency,
    durationMs: seconds * 1000,
    maxOps: MAX_OPS_PER_RUN,
    operation: scenarioOperation(started.client, scenario, distribution, runId),
  });
  const after = sampleProcess(pid);
  const dbAfter = dbPid === null ? null : sampleProcess(dbPid);
  const row: Row = {
    server,
    scenario,
    distribution,
    concurrency,
    result,
    serverCpuPercent: cpuPercent(before, after),
    serverRssMb: after.rssBytes / 2 ** 20,
    dbCpuMsPerOp: dbBefore && dbAfter && result.ops > 0 ? ((dbAfter.cpuSeconds - dbBefore.cpuSeconds) * 1000) / result.ops : null,
  };
  if (recorded) process.stderr.write(`${formatRow(row)}${result.firstError ? `  first error: ${result.firstError}` : ""}\n`);
  return row;
}

const fixed = (n: number, digits = 1) => n.toFixed(digits);
/** The lowest and highest of some ratios, as "0.81–0.93" ("-" for none). */
const spread = (values: readonly number[]) =>
  values.length === 0 ? "-" : `${fixed(Math.min(...values), 2)}–${fixed(Math.max(...values), 2)}`;

function formatRow(r: Row): string {
  return `| ${r.server} | ${r.scenario} | ${r.distribution} | ${r.concurrency} | ${fixed(r.result.opsPerSecond, 0)} | ${fixed(r.result.p50Ms, 2)} | ${fixed(r.result.p99Ms, 2)} | ${r.result.errors} | ${fixed(r.serverCpuPercent, 0)} | ${fixed(r.serverRssMb, 0)} | ${r.dbCpuMsPerOp === null ? "-" : fixed(r.dbCpuMsPerOp, 2)} |`;
}

const TABLE_HEADER =
  "| server | scenario | customers | concurrency | ops/s | p50 ms | p99 ms | errors | server CPU % | server RSS MB | DB CPU ms/op |\n|---|---|---|---|---|---|---|---|---|---|---|";

/** The local database server's pid, to charge its CPU to the run (null when not visible). */
function databasePid(): number | null {
  for (const name of ["mariadbd", "mysqld"]) {
    try {
      const out = execFileSync("pidof", [name], { encoding: "utf8" }).trim().split(/\s+/)[0];
      if (out) return Number(out);
    } catch {
      // Not running under that name.
    }
  }
  return null;
}

async function seedOurs(client: BillingClient): Promise<void> {
  let next = 0;
  await runLoad({
    concurrency: 64,
    durationMs: 600_000,
    maxOps: CUSTOMERS,
    operation: async () => {
      const i = next++;
      await client.call("deposit", { customerId: `c${i}`, amount: SEED_CREDITS, idempotencyKey: `seed-${i}` });
    },
  });
}

/** Cost growth: a customer with 1 vs 200 accounts, and the ledger at 1 vs LEDGER_ROWS rows. */
async function growth(ours: Started, databaseUrl: string): Promise<string[]> {
  const lines: string[] = [];
  const { client } = ours;
  const seconds = 2;
  const one = async (label: string, customerId: string, scenario: "deduct" | "freeze+consume") => {
    const runId = `growth-${label.replace(/\W/g, "_")}-${scenario.replace("+", "_")}-${Date.now().toString(36)}`;
    const operation =
      scenario === "deduct"
        ? (seq: number) => client.call("deduct", { customerId, transactionId: `${runId}-${seq}`, amount: 1n }).then(() => undefined)
        : async (seq: number) => {
            const transactionId = `${runId}-${seq}`;
            await client.call("freeze", { customerId, transactionId, amount: 2n });
            await client.call("consume", { transactionId, actualAmount: 1n });
          };
    const r = await runLoad({ concurrency: 1, durationMs: seconds * 1000, maxOps: MAX_OPS_PER_RUN, operation });
    const line = `| ${label} | ${scenario} | ${fixed(r.opsPerSecond, 0)} | ${fixed(r.p50Ms, 2)} | ${fixed(r.p99Ms, 2)} | ${r.errors} |`;
    process.stderr.write(`${line}\n`);
    lines.push(line);
  };

  await client.call("deposit", { customerId: "g1", amount: SEED_CREDITS });
  const now = Date.now();
  for (let i = 0; i < 200; i++) {
    // Soonest-expiring first: each deduct of 1 touches only the first account, so any cost
    // difference is the price of loading and locking the other 199.
    await client.call("deposit", {
      customerId: "g200",
      amount: SEED_CREDITS,
      expiresAt: { seconds: BigInt(Math.floor(now / 1000) + 86_400 * (i + 1)), nanos: 0 },
    });
  }
  // Alternating short runs, so that the machine's drift falls on both cases alike.
  for (const scenario of ["deduct", "freeze+consume"] as const) {
    for (let rep = 0; rep < 3; rep++) {
      await one("1 account", "g1", scenario);
      await one("200 accounts", "g200", scenario);
    }
  }

  await one("ledger as seeded", "g1", "deduct");
  const connection = await mysql.createConnection(databaseUrl);
  const [counted] = await connection.query("SELECT COUNT(*) AS n FROM ledger_entries");
  const existing = Number((counted as Array<{ n: number }>)[0]?.n ?? 0);
  const digits =
    "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
  const started = performance.now();
  const chunk = 1_000_000;
  for (let done = 0; done < LEDGER_ROWS; done += chunk) {
    const rows = Math.min(chunk, LEDGER_ROWS - done);
    // Bulk rows for 10,000 other customers, 500 each: what years of history would look like.
    // Customer by customer, so the secondary indexes grow at their right edge and the seed
    // takes a minute instead of a quarter of an hour.
    await connection.query(
      `INSERT INTO ledger_entries (project_id, customer_pk, account_id, operation, amount, credit_type, source, metadata, created_at)
       SELECT 1, ${1_000_000 + done / 500} + FLOOR(n / 500), ${1_000_000 + done / 500} + FLOOR(n / 500), 'DEPOSIT', 1,
         'default', 'default', '{}', UTC_TIMESTAMP(3)
       FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 100000 * g.d AS n
             FROM ${digits} a, ${digits} b, ${digits} c, ${digits} e, ${digits} f, ${digits} g) numbers
       WHERE n < ${rows}
       ORDER BY n`,
    );
  }
  const seedSeconds = (performance.now() - started) / 1000;
  process.stderr.write(`seeded ${LEDGER_ROWS} ledger rows in ${fixed(seedSeconds)} s\n`);
  const settleSeconds = await untilFlushed(connection);
  await connection.end();
  await one(`ledger + ${(LEDGER_ROWS / 1e6).toFixed(1)}M rows`, "g1", "deduct");
  await one(`ledger + ${(LEDGER_ROWS / 1e6).toFixed(1)}M rows`, "g1", "freeze+consume");
  lines.push(
    `\nLedger held ${existing} rows before the bulk seed of ${LEDGER_ROWS} rows (${fixed(seedSeconds)} s); ` +
      `the measures after it waited ${fixed(settleSeconds)} s for InnoDB to write the seed's dirty pages back.`,
  );
  return lines;
}

/**
 * Waits (at most 60 s) until InnoDB has written back the pages a bulk seed dirtied (all but 1 %
 * of the pool), so what is measured after it is less the flush of the seed competing for the
 * same two cores. InnoDB's adaptive flushing may keep more dirty for longer. Returns the seconds waited.
 */
async function untilFlushed(connection: mysql.Connection): Promise<number> {
  const started = performance.now();
  const status = async (name: string) => {
    const [rows] = await connection.query("SHOW GLOBAL STATUS LIKE ?", [name]);
    return Number((rows as Array<{ Value: string }>)[0]?.Value ?? 0);
  };
  const total = await status("Innodb_buffer_pool_pages_total");
  while (performance.now() - started < 60_000 && (await status("Innodb_buffer_pool_pages_dirty")) > total / 100) {
    await new Promise((r) => setTimeout(r, 1000));
  }
  return (performance.now() - started) / 1000;
}

/** Deposits sent together: one Batch of BATCH_SIZE against as many separate calls in parallel. */
const BATCH_SIZE = 50;

async function batchVsCalls(ours: Started): Promise<string[]> {
  const lines: string[] = [];
  const { client } = ours;
  const customerOf = (seq: number, i: number) => `c${(seq * BATCH_SIZE + i) % CUSTOMERS}`;
  const one = async (mode: "one Batch" | "separate calls", concurrency: number) => {
    const runId = `batch-${mode.replace(/\W/g, "_")}-${concurrency}-${Date.now().toString(36)}`;
    const operation =
      mode === "one Batch"
        ? async (seq: number) => {
            const operations = Array.from({ length: BATCH_SIZE }, (_, i) => ({
              operation: {
                $case: "deposit" as const,
                value: { customerId: customerOf(seq, i), amount: 1n, idempotencyKey: `${runId}-${seq}-${i}` },
              },
            }));
            const r = await client.call("batch", { operations, atomic: true });
            if (r.failedIndex !== undefined) throw new Error(`batch failed at ${r.failedIndex}: ${r.failedError?.code}`);
          }
        : async (seq: number) => {
            await Promise.all(
              Array.from({ length: BATCH_SIZE }, (_, i) =>
                client.call("deposit", { customerId: customerOf(seq, i), amount: 1n, idempotencyKey: `${runId}-${seq}-${i}` }),
              ),
            );
          };
    const r = await runLoad({ concurrency, durationMs: SECONDS * 1000, maxOps: MAX_OPS_PER_RUN, operation });
    const line = `| ${BATCH_SIZE} deposits as ${mode} | ${concurrency} | ${fixed(r.opsPerSecond * BATCH_SIZE, 0)} | ${fixed(r.p50Ms, 2)} | ${fixed(r.p99Ms, 2)} | ${r.errors} |`;
    process.stderr.write(`${line}${r.firstError ? `  first error: ${r.firstError}` : ""}\n`);
    lines.push(line);
  };
  for (const concurrency of [1, 8]) {
    for (let rep = 0; rep < REPEATS; rep++) {
      await one("one Batch", concurrency);
      await one("separate calls", concurrency);
    }
  }
  return lines;
}

async function dropDatabase(name: string): Promise<void> {
  const connection = await mysql.createConnection(DB_SERVER);
  await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await connection.end();
}

/** What the change feed's outbox costs: ours against the same build with EVENTS_OUTBOX=off (target ≥ 0.9). */
function outboxLines(
  ratios: readonly {
    scenario: string;
    distribution: string;
    concurrency: number;
    ours: number;
    noOutbox: number | null;
    outboxRounds: readonly number[];
  }[],
) {
  const compared = ratios.filter((r) => r.noOutbox !== null);
  if (compared.length === 0) return [];
  return [
    "",
    "## The outbox's cost: ours with events / ours with EVENTS_OUTBOX=off (same build, alternating; target ≥ 0.9)",
    "",
    "| operation | customers | concurrency | with events ops/s | outbox off ops/s | ratio | per round |",
    "|---|---|---|---|---|---|---|",
    ...compared.map(
      (r) =>
        `| ${r.scenario} | ${r.distribution} | ${r.concurrency} | ${fixed(r.ours, 0)} | ${fixed(r.noOutbox ?? 0, 0)} | ${fixed(r.ours / (r.noOutbox ?? 1), 2)} | ${spread(r.outboxRounds)} |`,
    ),
  ];
}

async function main(): Promise<void> {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const oursDb = `vb_bench_${Date.now().toString(36)}`;
  const baseDb = `${oursDb}_baseline`;
  const oursUrl = `${DB_SERVER}/${oursDb}`;
  const ours = await startProcess(
    "src/main.ts",
    { DATABASE_URL: oursUrl, LOG_LEVEL: "info", SWEEP_INTERVAL_MS: "1000" },
    await benchKey(oursUrl),
    OURS_NODE_ARGS,
  );
  const noOutboxDb = `${oursDb}_no_outbox`;
  const noOutboxUrl = `${DB_SERVER}/${noOutboxDb}`;
  const noOutbox = OUTBOX_COMPARED
    ? await startProcess(
        "src/main.ts",
        { DATABASE_URL: noOutboxUrl, LOG_LEVEL: "info", SWEEP_INTERVAL_MS: "1000", EVENTS_OUTBOX: "off" },
        await benchKey(noOutboxUrl),
        OURS_NODE_ARGS,
      )
    : null;
  const baseline = await startProcess("bench/baseline-server.ts", { DATABASE_URL: `${DB_SERVER}/${baseDb}` });
  const rows: Row[] = [];
  let growthLines: string[] = [];
  let batchLines: string[] = [];
  try {
    process.stderr.write(`seeding ${CUSTOMERS} customers on each server\n`);
    await seedOurs(ours.client);
    if (noOutbox) await seedOurs(noOutbox.client);
    await baseline.client.call("deposit", { customerId: "c", amount: BigInt(CUSTOMERS), name: SEED_CREDITS.toString() });
    process.stderr.write(`${TABLE_HEADER}\n`);

    for (const distribution of DISTRIBUTIONS) {
      for (const concurrency of CONCURRENCIES) {
        // The compared runs alternate, REPEATS times each, so that drift in the machine (disk
        // flushes, other tenants, a VM speeding up as it warms) falls on every server alike; the
        // ratio uses their mean. Every other repeat runs them in reverse order (A B C, C B A): with
        // a fixed order, a machine that drifts one way always favours the server that runs last.
        const compared: Array<[Row["server"], Started]> = [
          ["ours", ours],
          ["baseline", baseline],
          ...(noOutbox ? [["ours-no-outbox", noOutbox] as [Row["server"], Started]] : []),
        ];
        for (const scenario of ["freeze", "freeze+consume"].filter(wanted)) {
          // An unrecorded warm-up of each server at this case first: the first run after a change
          // of load pays for connections opened, code paths compiled and pages read (seen: 0.47 ms
          // of database CPU per Freeze against 0.32 in the same server's second run), and without
          // it that cost landed on whichever server ran first.
          for (const [name, server] of compared) await measure(name, server, scenario, distribution, concurrency, WARMUP_SECONDS, false);
          for (let rep = 0; rep < REPEATS; rep++) {
            for (const [name, server] of rep % 2 === 0 ? compared : [...compared].reverse()) {
              rows.push(await measure(name, server, scenario, distribution, concurrency));
            }
          }
        }
        for (const scenario of ["deposit", "deduct", "mixed"].filter(wanted)) {
          rows.push(await measure("ours", ours, scenario, distribution, concurrency));
        }
      }
    }
    if (wanted("batch")) batchLines = await batchVsCalls(ours);
    if (GROWTH) growthLines = await growth(ours, oursUrl);
  } finally {
    await stopProcess(ours);
    await stopProcess(baseline);
    if (noOutbox) {
      await stopProcess(noOutbox);
      await dropDatabase(noOutboxDb);
    }
    await dropDatabase(oursDb);
    await dropDatabase(baseDb);
  }

  const runsLike = (server: Row["server"], like: Row) =>
    rows.filter(
      (r) =>
        r.server === server && r.scenario === like.scenario && r.distribution === like.distribution && r.concurrency === like.concurrency,
    );
  const mean = (server: Row["server"], like: Row, of: (r: Row) => number) => {
    const runs = runsLike(server, like);
    return runs.reduce((sum, r) => sum + of(r), 0) / Math.max(1, runs.length);
  };
  const meanOpsPerSecond = (server: Row["server"], like: Row) => mean(server, like, (r) => r.result.opsPerSecond);
  // Each round's ratio pairs the two servers' runs of that round: their spread is the noise the
  // mean hides.
  const roundRatios = (server: Row["server"], against: Row["server"], like: Row) => {
    const theirs = runsLike(against, like);
    return runsLike(server, like).flatMap((r, i) => {
      const other = theirs[i];
      return other ? [r.result.opsPerSecond / other.result.opsPerSecond] : [];
    });
  };
  const meanDbCpu = (server: Row["server"], like: Row) => {
    const measured = runsLike(server, like).flatMap((r) => (r.dbCpuMsPerOp === null ? [] : [r.dbCpuMsPerOp]));
    return measured.length === 0 ? null : measured.reduce((sum, x) => sum + x, 0) / measured.length;
  };
  const compared = rows.filter((r) => r.server === "baseline");
  const ratios = compared
    .filter(
      (b, i) =>
        compared.findIndex((x) => x.scenario === b.scenario && x.distribution === b.distribution && x.concurrency === b.concurrency) === i,
    )
    .map((b) => {
      const oursMean = meanOpsPerSecond("ours", b);
      const baselineMean = meanOpsPerSecond("baseline", b);
      return {
        scenario: b.scenario,
        distribution: b.distribution,
        concurrency: b.concurrency,
        ours: oursMean,
        baseline: baselineMean,
        ratio: oursMean / baselineMean,
        rounds: roundRatios("ours", "baseline", b),
        oursDbCpu: meanDbCpu("ours", b),
        baselineDbCpu: meanDbCpu("baseline", b),
        outboxRounds: roundRatios("ours", "ours-no-outbox", b),
        oursP50: mean("ours", b, (r) => r.result.p50Ms),
        baselineP50: mean("baseline", b, (r) => r.result.p50Ms),
        oursP99: mean("ours", b, (r) => r.result.p99Ms),
        baselineP99: mean("baseline", b, (r) => r.result.p99Ms),
        noOutbox: runsLike("ours-no-outbox", b).length > 0 ? meanOpsPerSecond("ours-no-outbox", b) : null,
      };
    });

  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}; load generator, servers and MariaDB share the machine`;
  const markdown = [
    `# Benchmark ${stamp}`,
    "",
    `${machine}. ${SECONDS} s per run, ${CUSTOMERS} customers (uniform) or one hot customer; freeze+consume counts one pair as one op.`,
    "",
    TABLE_HEADER,
    ...rows.map(formatRow),
    "",
    `## Ours vs the baseline (mean of ${REPEATS} alternating runs each)`,
    "",
    "Targets: at concurrency 64, uniform Freeze ≥ 1.0 and hot Freeze ≥ 2.0 with p99 ≤ the baseline's; at concurrency 1, Freeze p50 ≤ 1.1 × the baseline's p50.",
    "",
    "Per round: the lowest and highest of the rounds' own ratios. DB CPU: the database server's CPU per operation, ours / the baseline's.",
    "",
    "| operation | customers | concurrency | ours ops/s | baseline ops/s | ratio | per round | p50 ratio | ours p99 ms | baseline p99 ms | DB CPU ratio |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
    ...ratios.map(
      (r) =>
        `| ${r.scenario} | ${r.distribution} | ${r.concurrency} | ${fixed(r.ours, 0)} | ${fixed(r.baseline, 0)} | ${fixed(r.ratio, 2)} | ${spread(r.rounds)} | ${fixed(r.oursP50 / r.baselineP50, 2)} | ${fixed(r.oursP99, 2)} | ${fixed(r.baselineP99, 2)} | ${r.oursDbCpu === null || r.baselineDbCpu === null ? "-" : fixed(r.oursDbCpu / r.baselineDbCpu, 2)} |`,
    ),
    ...outboxLines(ratios),
    ...(batchLines.length > 0
      ? [
          "",
          `## ${BATCH_SIZE} deposits: one Batch (atomic) vs ${BATCH_SIZE} separate calls in parallel (uniform customers)`,
          "",
          "| how | concurrency | deposits/s | p50 ms (per 50) | p99 ms (per 50) | errors |",
          "|---|---|---|---|---|---|",
          ...batchLines,
        ]
      : []),
    ...(growthLines.length > 0
      ? [
          "",
          "## Cost growth (concurrency 1)",
          "",
          "| case | operation | ops/s | p50 ms | p99 ms | errors |",
          "|---|---|---|---|---|---|",
          ...growthLines,
        ]
      : []),
    "",
  ].join("\n");
  mkdirSync(`${ROOT}/bench/results`, { recursive: true });
  const json = JSON.stringify(
    { stamp, machine, seconds: SECONDS, customers: CUSTOMERS, rows, ratios, batch: batchLines, growth: growthLines },
    null,
    2,
  );
  for (const name of [stamp, "latest"]) {
    writeFileSync(`${ROOT}/bench/results/${name}.json`, `${json}\n`);
    writeFileSync(`${ROOT}/bench/results/${name}.md`, markdown);
  }
  process.stdout.write(`${markdown}\nwrote bench/results/${stamp}.{json,md} and latest.{json,md}\n`);
}

await main();
