import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import type { ServiceError } from "@grpc/grpc-js";
import mysql, { type Connection, type RowDataPacket } from "mysql2/promise";
import { afterAll, describe, expect, it } from "vitest";
import type { Balance, ConsumeResponse, DeductResponse, DepositResponse, FreezeResponse } from "../../gen/velobase/billing/v1/billing.js";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { generateApiKey } from "../../src/domain/api-key.js";
import { TestClient } from "../support/client.js";
import { uniqueDatabaseUrl } from "../support/database.js";
import { collect, ROOT, spawnMain } from "../support/spawn.js";
import { TcpProxy } from "../support/tcp-proxy.js";

/**
 * kill -9 in the middle of load: the server dies with requests in flight, some committed whose
 * answers never left. After a restart on the same database every request whose answer was lost
 * is sent again with the same key: it must be applied now, or replayed (applied before the
 * crash), or refused by the rules — never applied twice. Answered requests replay byte for byte.
 * At the end the ledger verifies and every balance is exactly what the answers add up to.
 */

const CUSTOMERS = 20;
const SEED_AMOUNT = 1500n;
const OPERATIONS = 2000;
const IN_FLIGHT = 64;
const KILL_AFTER_MIN = 300;
const KILL_AFTER_MAX = 500;
/** Customers whose lost requests are replayed side by side after the restart. */
const REPLAY_LANES_AT_ONCE = 8;
/** Share of the answered successes sent again after the restart. */
const ANSWERED_REPLAY_SHARE = 0.15;

type Op =
  | { readonly kind: "deposit"; readonly customerId: string; readonly key: string; readonly amount: bigint }
  | { readonly kind: "deduct" | "freeze"; readonly customerId: string; readonly transactionId: string; readonly amount: bigint }
  | {
      readonly kind: "consume";
      readonly customerId: string;
      readonly transactionId: string;
      readonly frozen: bigint;
      readonly actualAmount: bigint;
      readonly allowOverage: boolean;
    };

type Response = DepositResponse | DeductResponse | FreezeResponse | ConsumeResponse;

/**
 * What came back: an answer (a success or a refusal by the rules), or none — the connection
 * failed, or the server said service_unavailable (its transaction rolled back, retry later).
 */
type Reply =
  | { readonly kind: "ok"; readonly response: Response }
  | { readonly kind: "refused"; readonly code: string; readonly facts: Record<string, string> }
  | { readonly kind: "lost"; readonly why: string };

interface Sent {
  readonly seq: number;
  readonly op: Op;
  reply: Reply;
}

/** JSON with bigints as strings, for failure messages. */
const show = (value: unknown): string => JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v));

const random = (min: number, max: number): bigint => BigInt(min + Math.floor(Math.random() * (max - min + 1)));

function call(client: TestClient, op: Op): Promise<Response> {
  switch (op.kind) {
    case "deposit":
      return client.call("deposit", { customerId: op.customerId, idempotencyKey: op.key, amount: op.amount });
    case "deduct":
      return client.call("deduct", { customerId: op.customerId, transactionId: op.transactionId, amount: op.amount });
    case "freeze":
      return client.call("freeze", { customerId: op.customerId, transactionId: op.transactionId, amount: op.amount });
    case "consume":
      return client.call("consume", {
        customerId: op.customerId,
        transactionId: op.transactionId,
        actualAmount: op.actualAmount,
        allowOverage: op.allowOverage,
      });
  }
}

async function send(client: TestClient, op: Op): Promise<Reply> {
  try {
    return { kind: "ok", response: await call(client, op) };
  } catch (error) {
    const e = error as ServiceError;
    const { detail, info } = decodeStatusDetails(e.metadata);
    if (!detail) return { kind: "lost", why: `transport: ${e.details}` };
    if (detail.code === "service_unavailable") return { kind: "lost", why: "service_unavailable" };
    return { kind: "refused", code: detail.code, facts: info?.metadata ?? {} };
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
  readonly output: () => { stdout: string; stderr: string };
}

/**
 * Starts src/main.ts and waits until it answers. With LOG_LEVEL=warn the "velobase-billing
 * listening" line is not logged (it is info), so readiness is a Deduct for an unknown customer
 * answered customer_not_found: the server is up and reaches the database.
 */
/** The servers start with this key (BOOTSTRAP_API_KEY) and every client presents it. */
const API_KEY = generateApiKey("test");

async function startServer(env: Record<string, string>, port: number): Promise<Running> {
  const child = spawnMain(env);
  const { output, exited } = collect(child);
  let exitCode: number | null | undefined;
  void exited.then((exit) => (exitCode = exit.code));
  let ready = false;
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exitCode !== undefined) throw new Error(`the server exited with ${exitCode}:\n${show(output())}`);
      if (Date.now() > deadline) throw new Error(`the server did not answer within 30 s:\n${show(output())}`);
      // A fresh client per probe: a failed channel would otherwise wait out its reconnect backoff.
      const probe = new TestClient(port, API_KEY);
      const reply = await send(probe, { kind: "deduct", customerId: "probe", transactionId: "probe", amount: 1n });
      probe.close();
      if (reply.kind === "refused" && reply.code === "customer_not_found") {
        ready = true;
        return { child, exited, output };
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    // A server that never answered does not outlive the test.
    if (!ready) {
      child.kill("SIGKILL");
      await exited;
    }
  }
}

function verifyCli(databaseUrl: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "verify"], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl },
  });
  return collect(child).exited;
}

/** The 2,000 operations: keyed deposits, deducts, and freeze → consume pairs, each with its own key. */
function plan(prefix: string, customers: readonly string[]): Array<Op | { kind: "pair"; freeze: Op; consume: Op }> {
  return Array.from({ length: OPERATIONS }, (_, i) => {
    const customerId = customers[Math.floor(Math.random() * customers.length)] ?? "";
    const roll = Math.random();
    if (roll < 0.3) return { kind: "deposit" as const, customerId, key: `${prefix}-dep-${i}`, amount: random(1, 200) };
    if (roll < 0.6) return { kind: "deduct" as const, customerId, transactionId: `${prefix}-ded-${i}`, amount: random(1, 150) };
    const transactionId = `${prefix}-hold-${i}`;
    const amount = random(1, 200);
    const over = Math.random() < 0.2;
    return {
      kind: "pair" as const,
      freeze: { kind: "freeze" as const, customerId, transactionId, amount },
      consume: {
        kind: "consume" as const,
        customerId,
        transactionId,
        frozen: amount,
        actualAmount: over ? amount + random(1, 300) : random(0, Number(amount)),
        allowOverage: over,
      },
    };
  });
}

/** One customer's figures as the test follows them through the replays. */
interface Figures {
  total: bigint;
  used: bigint;
  frozen: bigint;
}
const available = (f: Figures): bigint => f.total - f.used - f.frozen;
const balanceOf = (f: Figures): Balance => ({ total: f.total, used: f.used, frozen: f.frozen, available: available(f) });

/**
 * What a request not yet applied does to the figures, or the error the rules give when it cannot
 * be applied (Deduct, Freeze and an overage beyond the hold need available credits).
 */
function applyFresh(f: Figures, op: Op): { code: string; facts: Record<string, string> } | null {
  const short = (requested: bigint) => ({
    code: "insufficient_balance",
    facts: { requested: `${requested}`, available: `${available(f)}`, wallet: "*" },
  });
  switch (op.kind) {
    case "deposit":
      f.total += op.amount;
      return null;
    case "deduct":
      if (available(f) < op.amount) return short(op.amount);
      f.used += op.amount;
      return null;
    case "freeze":
      if (available(f) < op.amount) return short(op.amount);
      f.frozen += op.amount;
      return null;
    case "consume": {
      const overage = op.actualAmount > op.frozen ? op.actualAmount - op.frozen : 0n;
      if (available(f) < overage) return short(overage);
      f.frozen -= op.frozen;
      f.used += op.actualAmount;
      return null;
    }
  }
}

/** Where each write's outcome is stored once it commits (idempotency_outcomes: scope and key). */
const outcomeOf = (op: Op): string =>
  op.kind === "deposit" ? `DEPOSIT ${op.key}` : `${op.kind === "consume" ? "SETTLE" : "SPEND"} ${op.transactionId}`;

/** How many of these requests committed: their outcome is stored. */
async function committedCount(connection: Connection, requests: readonly Sent[]): Promise<number> {
  if (requests.length === 0) return 0;
  const keys = [...new Set(requests.map((s) => (s.op.kind === "deposit" ? s.op.key : s.op.transactionId)))];
  const [rows] = await connection.query<RowDataPacket[]>(
    "SELECT scope, idempotency_key FROM idempotency_outcomes WHERE idempotency_key IN (?)",
    [keys],
  );
  const stored = new Set(rows.map((r) => `${r.scope} ${r.idempotency_key}`));
  return requests.filter((s) => stored.has(outcomeOf(s.op))).length;
}

/** A request still waiting for its reply (see loadUntilKilled). */
const inFlight = (s: Sent): boolean => s.reply.kind === "lost" && s.reply.why === "not sent";

/**
 * Cuts the proxy the load goes through; once a request that was in flight then has lost its
 * answer and is committed in the database (the case this test is for, made certain, not left to
 * the moment of the kill), kills the server 0-60 ms later while it still works.
 */
function killer(victim: Running, proxy: TcpProxy, sent: readonly Sent[], connection: Connection): () => Promise<void> {
  return async () => {
    const atCut = sent.filter(inFlight);
    try {
      await proxy.cut();
      for (const deadline = Date.now() + 10_000; ; await new Promise((resolve) => setTimeout(resolve, 20))) {
        const lost = atCut.filter((s) => s.reply.kind === "lost" && !inFlight(s));
        if ((await committedCount(connection, lost)) > 0) break;
        if (Date.now() > deadline)
          throw new Error(`none of the ${atCut.length} requests in flight at the cut committed with its answer lost within 10 s`);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 60));
    } finally {
      victim.child.kill("SIGKILL");
    }
  };
}

/**
 * Fires the operations, IN_FLIGHT at a time, recording every request and its reply; after
 * KILL_AFTER_MIN..MAX answers the proxy is cut and the server killed. Requests still running then
 * (and all sent after) get no answer. Returns how many answers arrived before the kill.
 */
async function loadUntilKilled(
  client: TestClient,
  operations: ReturnType<typeof plan>,
  sent: Sent[],
  kill: () => Promise<void>,
): Promise<number> {
  const killAt = KILL_AFTER_MIN + Math.floor(Math.random() * (KILL_AFTER_MAX - KILL_AFTER_MIN + 1));
  let answered = 0;
  let killed: Promise<void> | null = null;
  const record = async (op: Op): Promise<Reply> => {
    const entry: Sent = { seq: sent.length, op, reply: { kind: "lost", why: "not sent" } };
    sent.push(entry);
    entry.reply = await send(client, op);
    if (entry.reply.kind !== "lost") answered += 1;
    if (!killed && answered >= killAt) killed = kill();
    return entry.reply;
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let i = next++; i < operations.length; i = next++) {
        const operation = operations[i];
        if (!operation) break;
        if (operation.kind !== "pair") await record(operation);
        else if ((await record(operation.freeze)).kind === "ok") await record(operation.consume);
      }
    }),
  );
  expect(killed, "the server was killed during the load").not.toBeNull();
  await killed;
  return killAt;
}

interface ReplayStats {
  lost: number;
  appliedBeforeCrash: number;
  appliedNow: number;
  refused: number;
  answeredReplayed: number;
}

/**
 * Sends one request again after the restart. Answered before the crash: the very same answer,
 * flagged as a replay. Answer lost: a replay (it was applied before the crash), or applied now,
 * or refused exactly as the rules say given the customer's figures, which follow along.
 */
async function replay(client: TestClient, s: Sent, f: Figures, stats: ReplayStats): Promise<void> {
  const again = await send(client, s.op);
  const what = `${s.op.kind} #${s.seq} ${show(s.op)}`;
  if (s.reply.kind === "ok") {
    expect(again, what).toEqual({ kind: "ok", response: { ...s.reply.response, isIdempotentReplay: true } });
    return;
  }
  // Lanes are different customers, which never wait on each other: no service_unavailable either.
  expect(again.kind, `${what} must be answered after the restart: ${show(again)}`).not.toBe("lost");
  s.reply = again;
  if (again.kind === "ok" && again.response.isIdempotentReplay) {
    stats.appliedBeforeCrash += 1;
    expectAmounts(again.response, s.op, what);
    return;
  }
  const refusal = applyFresh(f, s.op);
  if (refusal) {
    stats.refused += 1;
    expect(again, what).toEqual({ kind: "refused", ...refusal });
    return;
  }
  stats.appliedNow += 1;
  expect(again.kind, `${what}: ${show(again)}`).toBe("ok");
  if (again.kind !== "ok") return;
  expectAmounts(again.response, s.op, what);
  expect(again.response.balance, `${what}: balance`).toEqual(balanceOf(f));
}

/** Every lost request and a sample of answered ones, per customer in the order first sent. */
async function replayAll(
  client: TestClient,
  customers: readonly string[],
  sent: readonly Sent[],
): Promise<{ stats: ReplayStats; figures: Map<string, Figures> }> {
  const figures = new Map<string, Figures>();
  for (const customerId of customers) {
    const balance = (await client.call("getCustomer", { customerId })).balance;
    figures.set(customerId, { total: balance?.total ?? 0n, used: balance?.used ?? 0n, frozen: balance?.frozen ?? 0n });
  }
  const lost = sent.filter((s) => s.reply.kind === "lost");
  const sample = sent.filter((s) => s.reply.kind === "ok" && Math.random() < ANSWERED_REPLAY_SHARE);
  const stats: ReplayStats = { lost: lost.length, appliedBeforeCrash: 0, appliedNow: 0, refused: 0, answeredReplayed: sample.length };
  const lanes = customers.map((customerId) =>
    [...lost, ...sample].filter((s) => s.op.customerId === customerId).sort((a, b) => a.seq - b.seq),
  );
  let next = 0;
  await Promise.all(
    Array.from({ length: REPLAY_LANES_AT_ONCE }, async () => {
      for (let l = next++; l < lanes.length; l = next++) {
        for (const s of lanes[l] ?? []) {
          const f = figures.get(s.op.customerId);
          if (!f) throw new Error(`no figures for ${s.op.customerId}`);
          await replay(client, s, f, stats);
        }
      }
    }),
  );
  return { stats, figures };
}

/** Each balance: total deposited − deducted − consumed, frozen = holds never consumed. */
function sumOfAnswers(customers: readonly string[], sent: readonly Sent[]): Map<string, Figures> {
  const sums = new Map<string, Figures>(customers.map((c) => [c, { total: 0n, used: 0n, frozen: 0n }]));
  const consumed = new Set(sent.flatMap((s) => (s.op.kind === "consume" && s.reply.kind === "ok" ? [s.op.transactionId] : [])));
  for (const { op, reply } of sent) {
    const f = sums.get(op.customerId);
    if (!f || reply.kind !== "ok") continue;
    if (op.kind === "deposit") f.total += op.amount;
    if (op.kind === "deduct") f.used += op.amount;
    if (op.kind === "freeze" && !consumed.has(op.transactionId)) f.frozen += op.amount;
    if (op.kind === "consume") f.used += op.actualAmount;
  }
  return sums;
}

const database = uniqueDatabaseUrl("vb_crash");
let running: Running | null = null;
let proxy: TcpProxy | null = null;
/** The test's own connection to the service's database: which requests committed. */
let connection: Connection | null = null;

afterAll(async () => {
  await proxy?.cut();
  running?.child.kill("SIGKILL");
  await running?.exited;
  await connection?.end();
  await database.drop();
});

describe("kill -9 under load", () => {
  it("loses no committed request and applies none twice: lost answers replay, balances add up, the ledger verifies", async () => {
    const phases: Record<string, number> = {};
    let phaseStart = Date.now();
    const phase = (name: string) => {
      phases[name] = Date.now() - phaseStart;
      phaseStart = Date.now();
    };
    const port = await freePort();
    const env = {
      BOOTSTRAP_API_KEY: API_KEY,
      DATABASE_URL: database.url,
      GRPC_HOST: "127.0.0.1",
      GRPC_PORT: String(port),
      LOG_LEVEL: "warn",
      SWEEP_INTERVAL_MS: "0",
    };
    const prefix = `crash-${Date.now().toString(36)}`;
    const customers = Array.from({ length: CUSTOMERS }, (_, i) => `${prefix}-c${i}`);
    const sent: Sent[] = [];

    const victim = await startServer(env, port);
    running = victim;
    connection = await mysql.createConnection(database.url);
    // The load goes through a loopback proxy: at the kill the proxy is cut first, so answers the
    // server is still producing cannot reach the client, and the SIGKILL follows 0-60 ms later.
    // Requests committed in that window are the interesting ones: applied, answer lost.
    proxy = new TcpProxy(port);
    const first = new TestClient(await proxy.start(), API_KEY);
    phase("start");
    for (const customerId of customers) {
      const op: Op = { kind: "deposit", customerId, key: `${customerId}-seed`, amount: SEED_AMOUNT };
      const reply = await send(first, op);
      expect(reply.kind).toBe("ok");
      sent.push({ seq: sent.length, op, reply });
    }
    phase("seed");
    const killAt = await loadUntilKilled(first, plan(prefix, customers), sent, killer(victim, proxy, sent, connection));
    first.close();
    expect((await victim.exited).code, "killed by a signal").toBe(null);
    // The requests whose answer was lost but whose write committed: each must replay after the restart.
    const committedLost = await committedCount(
      connection,
      sent.filter((s) => s.reply.kind === "lost"),
    );
    expect(committedLost, "requests committed with their answer lost").toBeGreaterThan(0);
    phase("load");
    // Before the kill only the rules may refuse a request.
    for (const s of sent) if (s.reply.kind === "refused") expect(s.reply.code, show(s)).toBe("insufficient_balance");
    const lostWhy = new Map<string, number>();
    for (const s of sent) if (s.reply.kind === "lost") lostWhy.set(s.reply.why, (lostWhy.get(s.reply.why) ?? 0) + 1);

    running = await startServer(env, port);
    const client = new TestClient(port, API_KEY);
    phase("restart");
    const { stats, figures } = await replayAll(client, customers, sent);
    phase("replay");
    expect(stats.appliedBeforeCrash, "lost answers replayed as applied before the crash").toBe(committedLost);

    const sums = sumOfAnswers(customers, sent);
    for (const customerId of customers) {
      const actual = (await client.call("getCustomer", { customerId })).balance;
      const sum = sums.get(customerId);
      const followed = figures.get(customerId);
      if (!sum || !followed) throw new Error(`no figures for ${customerId}`);
      expect(actual, `${customerId}: balance = what the successful answers add up to`).toEqual(balanceOf(sum));
      expect(actual, `${customerId}: balance = the figures followed through the replays`).toEqual(balanceOf(followed));
    }
    client.close();
    const verify = await verifyCli(database.url);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/: 0 problem\(s\)\n$/);
    phase("verify");

    running.child.kill("SIGTERM");
    expect((await running.exited).code).toBe(0);
    running = null;
    console.log(
      `killed after ${killAt} answers; ${sent.length} requests; committed with the answer lost: ${committedLost}; lost:`,
      Object.fromEntries(lostWhy),
      "after the restart:",
      stats,
      "ms:",
      phases,
    );
  }, 90_000);
});

/** A success (fresh or replayed) reports the amounts of the request that made it. */
function expectAmounts(response: Response, op: Op, what: string): void {
  switch (op.kind) {
    case "deposit":
      expect((response as DepositResponse).addedAmount, what).toBe(op.amount);
      return;
    case "deduct":
      expect((response as DeductResponse).deductedAmount, what).toBe(op.amount);
      return;
    case "freeze":
      expect((response as FreezeResponse).frozenAmount, what).toBe(op.amount);
      return;
    case "consume": {
      const r = response as ConsumeResponse;
      const overage = op.actualAmount > op.frozen ? op.actualAmount - op.frozen : 0n;
      expect([r.consumedAmount, r.returnedAmount, r.overageAmount], what).toEqual([
        op.actualAmount,
        op.frozen - op.actualAmount + overage,
        overage,
      ]);
      return;
    }
  }
}
