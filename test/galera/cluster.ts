import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import type { ServiceError } from "@grpc/grpc-js";
import mysql from "mysql2/promise";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { generateApiKey } from "../../src/domain/api-key.js";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { createLogger } from "../../src/logger.js";
import { TestClient } from "../support/client.js";
import { TestClock } from "../support/clock.js";
import { ROOT } from "../support/spawn.js";

/** The three local nodes of scripts/galera.sh (started by the tier's global setup). */
export const GALERA_DIR = process.env.GALERA_DIR ?? join(tmpdir(), "velobase-galera");
export const NODES = [1, 2, 3] as const;
export type Node = (typeof NODES)[number];
export const portOf = (node: Node) => 3310 + node;

/** DATABASE_URL naming the nodes in this order. */
export const clusterUrl = (order: readonly Node[], database: string) =>
  `mysql://root@${order.map((n) => `127.0.0.1:${portOf(n)}`).join(",")}/${database}`;
export const nodeUrl = (node: Node, database: string) => clusterUrl([node], database);

export const uniqueDatabaseName = (prefix = "vb_galera") => `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;

/** A connection straight to one node (no database selected). */
export const connectTo = (node: Node) =>
  mysql.createConnection({
    host: "127.0.0.1",
    port: portOf(node),
    user: "root",
    multipleStatements: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
  });

export async function dropDatabase(name: string, node: Node = 2): Promise<void> {
  const connection = await connectTo(node);
  try {
    await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
  } finally {
    await connection.end();
  }
}

const pidOf = (node: Node) => Number(readFileSync(join(GALERA_DIR, `n${node}`, "mariadbd.pid"), "utf8").trim());

/** kill -9 of one node's mariadbd; resolves once it no longer runs. */
export async function killNode(node: Node): Promise<void> {
  const pid = pidOf(node);
  process.kill(pid, "SIGKILL");
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(20);
  }
}

/** Starts a node back into the running cluster (scripts/galera.sh join: never --wsrep-new-cluster). */
export async function rejoinNode(node: Node): Promise<void> {
  await promisify(execFile)("bash", [join(ROOT, "scripts/galera.sh"), "join", GALERA_DIR, String(node)], { timeout: 180_000 });
}

/** What a node's error log says since `from` characters. */
export const errorLogOf = (node: Node) => readFileSync(join(GALERA_DIR, `n${node}`, "error.log"), "utf8");

export interface Instance {
  readonly app: App;
  readonly client: TestClient;
}

/** Service instances over one database, each with its own node order; one API key for all. */
export class Instances {
  readonly clock = new TestClock();
  readonly apiKey = generateApiKey("test");
  readonly all: Instance[] = [];
  constructor(readonly database: string) {}

  async start(order: readonly Node[], env: Record<string, string> = {}): Promise<Instance> {
    const config = loadConfig({
      DATABASE_URL: clusterUrl(order, this.database),
      GRPC_HOST: "127.0.0.1",
      GRPC_PORT: "0",
      HTTP_PORT: "0",
      SWEEP_INTERVAL_MS: "0",
      SHUTDOWN_GRACE_MS: "2000",
      HEALTH_CHECK_INTERVAL_MS: "200",
      DB_POOL_SIZE: "32",
      BOOTSTRAP_API_KEY: this.apiKey,
      ...env,
    });
    const app = await startApp(config, { log: createLogger(process.env.TEST_LOG_LEVEL ?? "silent"), now: this.clock.now });
    const instance = { app, client: new TestClient(app.port, this.apiKey) };
    this.all.push(instance);
    return instance;
  }

  async stop(): Promise<void> {
    for (const { app, client } of this.all) {
      client.close();
      await app.stop();
    }
    await dropDatabase(this.database);
  }
}

export const codeOf = (e: unknown) => decodeStatusDetails((e as ServiceError).metadata).detail?.code ?? String(e);

/**
 * The call, sent again with the same request (so the same transaction_id or idempotency key)
 * while it answers service_unavailable: a retryable answer says nothing about the outcome.
 */
export async function untilAnswered<T>(call: () => Promise<T>, attempts = 200): Promise<{ value?: T; code?: string; tries: number }> {
  for (let tries = 1; ; tries++) {
    try {
      return { value: await call(), tries };
    } catch (error) {
      const code = codeOf(error);
      if (code !== "service_unavailable" || tries >= attempts) return { code, tries };
      await sleep(50);
    }
  }
}
