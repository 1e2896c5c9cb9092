import { fileURLToPath } from "node:url";
import { drizzle, type MySql2Database } from "drizzle-orm/mysql2";
import { getTableName, is } from "drizzle-orm";
import { MySqlTable } from "drizzle-orm/mysql-core";
import mysql, { type Pool, type PoolOptions, type RowDataPacket } from "mysql2/promise";
import { ClusterPool, type ConnectionSource, type NodeSelector, PROBE_TIMEOUT_MS, type ProbeOutcome } from "./cluster-pool.js";
import { type DatabaseHost, type DatabaseUrl, parseDatabaseUrl } from "./database-url.js";
import { DatabaseNotReadyError } from "./database-errors.js";
import { unsupportedServer } from "./server-version.js";
import { isConnectionFailure } from "./sql-errors.js";
import { waitingLine, withLease } from "./leases-store.js";
import { applyMigrations, type LockWaits, type MigrationLog, pendingMigrations } from "./migration-runner.js";
import { queryFormat } from "./query-format.js";
import * as schema from "./schema.js";
import { ServerPool } from "./server-pool.js";

export type Db = MySql2Database<typeof schema>;
/** What a read needs of the database: a pool's or one transaction's statements. */
export type Reader = Pick<Db, "execute">;

export interface Database {
  readonly db: Db;
  /** Connections for transactions (runTransaction) and one-off queries; several servers behind one pool when clustered. */
  readonly pool: ConnectionSource;
  /** mysql2's own pool when DATABASE_URL names one server that is not a Galera node (its metrics read it). */
  readonly singlePool: Pool | null;
  readonly name: string;
  /** Whether the server is a Galera node (wsrep_on): its conflicts surface at COMMIT (docs/architecture.md). */
  readonly galera: boolean;
  /** Whether some server answers and may serve (a Galera node must be in the primary component), and why not. */
  probe(): Promise<ProbeOutcome>;
  /** A cluster's servers (`host:port`), in URL order; none for one server. */
  readonly nodeIds: readonly string[];
  /**
   * How long one round trip of a transaction may take before its connection counts as lost: the
   * lock wait timeout plus STATEMENT_TIMEOUT_MARGIN_MS (a Galera cluster pauses writes about 6 s
   * while it evicts a node). Only a hung server takes that long.
   */
  readonly statementTimeoutMs: number;
  /** innodb_lock_wait_timeout of every pooled connection, in seconds (DB_LOCK_WAIT_TIMEOUT_S). */
  readonly lockWaitTimeoutS: number;
  /** The servers the last probe or a refusal took out of use; none for one server. */
  nodesOut(): readonly string[];
  close(): Promise<void>;
}

const MIGRATIONS_FOLDER = fileURLToPath(new URL("./migrations", import.meta.url));
const CONNECT_TIMEOUT_MS = 5_000;
/** Row locks are held for milliseconds; a longer wait means trouble (see openDatabase). */
export const LOCK_WAIT_TIMEOUT_S_DEFAULT = 5;
/** What a round trip may take beyond the lock wait timeout before its server counts as hung. */
const STATEMENT_TIMEOUT_MARGIN_MS = 10_000;

/** Thrown when the server cannot be reached or refuses us; main turns it into one clear line. */
export class DatabaseUnreachableError extends Error {}

/** A read-only open found no database by that name, or one whose schema is behind this build. */
export { DatabaseNotReadyError };

interface ServerOptions {
  readonly hosts: readonly DatabaseHost[];
  readonly connection: PoolOptions & { database: string };
}

function connectionOptions(url: string): ServerOptions {
  let parsed: DatabaseUrl;
  try {
    parsed = parseDatabaseUrl(url);
  } catch (error) {
    throw new DatabaseUnreachableError(error instanceof Error ? error.message : String(error));
  }
  const { database } = parsed;
  return {
    hosts: parsed.hosts,
    connection: {
      user: parsed.user,
      password: parsed.password,
      database,
      // Times are UTC on both sides; big integers arrive as strings, never as lossy numbers.
      timezone: "Z",
      supportBigNumbers: true,
      bigNumberStrings: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Operations send their statements in batches (one round trip each, see run-transaction.ts).
      // Every value reaches the text through mysql2's escaping (run-transaction.ts's inlineStatement,
      // or its `?` placeholders), never pasted in raw, so batching adds no injection surface.
      multipleStatements: true,
      // A text without values is sent as it is, not scanned again for `?` (query-format.ts).
      queryFormat,
    },
  };
}

/** Whether the server is a Galera node; DatabaseNotReadyError when this build does not support it (server-version.ts). */
async function supportedServer(connection: mysql.Connection): Promise<{ galera: boolean }> {
  const [[version], wsrep] = (
    await connection.query("SELECT VERSION() AS version; SHOW GLOBAL VARIABLES LIKE 'wsrep_on'")
  )[0] as unknown as [Array<{ version?: unknown }>, Array<{ Value?: unknown }>];
  const galera = String(wsrep[0]?.Value ?? "OFF").toUpperCase() === "ON";
  const unsupported = unsupportedServer(String(version?.version ?? ""), galera);
  if (unsupported) throw new DatabaseNotReadyError(unsupported);
  return { galera };
}

/**
 * Creates the database if it is missing (with `create`; without, a missing one is
 * DatabaseNotReadyError), through the first server that answers; tells whether that server is a
 * Galera node. A server this build does not support (server-version.ts) is DatabaseNotReadyError.
 * Fails with DatabaseUnreachableError when none answers.
 */
async function ensureDatabase(server: ServerOptions, create: boolean): Promise<{ galera: boolean }> {
  const { database, ...serverOptions } = server.connection;
  let lastError: unknown;
  for (const host of server.hosts) {
    let connection: mysql.Connection | undefined;
    try {
      connection = await mysql.createConnection({ ...serverOptions, host: host.host, port: host.port });
      const { galera } = await supportedServer(connection);
      const [found] = await connection.query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", [database]);
      const exists = (found as unknown[]).length > 0;
      if (!exists && !create) throw new DatabaseNotReadyError(`there is no database ${database}`);
      // Only when missing: CREATE DATABASE waits for every DDL running in the database (a migration's
      // table copy), so a start beside another instance's migration hung there, saying nothing.
      if (!exists) await connection.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
      return { galera };
    } catch (error) {
      if (error instanceof DatabaseNotReadyError) throw error;
      lastError = error;
    } finally {
      await connection?.end().catch(() => undefined);
    }
  }
  const reason = lastError instanceof Error ? lastError.message : String(lastError);
  throw new DatabaseUnreachableError(reason || (lastError as { code?: string }).code || "connection failed", {
    cause: lastError,
  });
}

/**
 * `work`, or the signal's reason as soon as it aborts (a stop asked for while the first
 * connection still waits for a server that does not answer); `work` then ends on its own
 * timeout, unheeded.
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  work.catch(() => undefined);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Applies pending migrations while holding the migrations lease (a committed row, so instances
 * starting together on different Galera nodes take turns as well), on a pool of two of its own:
 * the migrations hold one connection for their whole run and the lease is renewed on the other,
 * whatever DB_POOL_SIZE is (with a pool of one the renewals queued behind a long migration, the
 * lease expired and a second instance ran the same migration at once).
 */
async function migrateExclusively(
  open: (options: PoolOptions) => Opened,
  options: PoolOptions,
  database: string,
  folder: string,
  log: MigrationLog,
  locks: LockWaits,
): Promise<void> {
  const { pool } = open({ ...options, connectionLimit: 2, maxIdle: 2 });
  const waiting = waitingLine(log, "the migrations");
  try {
    // Nothing pending (every start after the first): no lease to wait for. The runner looks again under it.
    if ((await pendingMigrations(pool, database, folder)).length === 0) return;
    await withLease(pool, "migrations", () => applyMigrations(pool, database, folder, log, locks), { waiting, signal: locks.signal });
  } catch (error) {
    // The database went away during a wait that may last minutes: one line at start, not a stack.
    if (isConnectionFailure(error)) {
      throw new DatabaseUnreachableError(`lost the database while migrating: ${(error as Error).message}`, { cause: error });
    }
    throw error;
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/** Fails with DatabaseNotReadyError when the database lacks a migration of this build (migration-runner.ts). */
async function refuseMigrationsPending(pool: ConnectionSource, database: string, folder: string): Promise<void> {
  const pending = (await pendingMigrations(pool, database, folder)).length;
  if (pending > 0)
    throw new DatabaseNotReadyError(`database ${database} has ${pending} migration(s) of this build pending: run migrate first`);
}

/** Every table of the schema (schema.ts). */
const SCHEMA_TABLES = Object.values(schema as Record<string, unknown>).flatMap((value) =>
  is(value, MySqlTable) ? [getTableName(value)] : [],
);

/**
 * Fails with DatabaseNotReadyError when a table of the schema is missing though the migrations
 * are recorded: a restore that did not finish (a dump cut short) would otherwise start, and fail
 * every call that reaches such a table.
 */
async function refuseTablesMissing(pool: ConnectionSource, database: string): Promise<void> {
  const [rows] = await pool.query<RowDataPacket[]>("SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", [
    database,
  ]);
  const present = new Set(rows.map((row) => String(row.name)));
  const missing = SCHEMA_TABLES.filter((name) => !present.has(name));
  if (missing.length > 0) {
    throw new DatabaseNotReadyError(
      `database ${database} lacks table(s) ${missing.join(", ")}, though its migrations are recorded (a restore that did not finish?)`,
    );
  }
}

/** Without a logger of the caller's, a migration's warning is one line on standard error. */
const STDERR_LOG: MigrationLog = {
  warn: (facts, message) => process.stderr.write(`velobase-billing: ${message} ${JSON.stringify(facts)}\n`),
};

export interface OpenOptions {
  poolSize?: number;
  /**
   * Create a missing database and apply pending migrations (the default), or neither: "read-only"
   * refuses a missing database or one with migrations pending (DatabaseNotReadyError) and writes
   * nothing, for a check such as verify; false opens as it finds it (tests of migrations).
   */
  migrate?: boolean | "read-only";
  /** innodb_lock_wait_timeout of every pooled connection (DB_LOCK_WAIT_TIMEOUT_S). */
  lockWaitTimeoutS?: number;
  /** How several servers are used: the first one up in URL order (default), or each in turn. */
  nodeSelector?: NodeSelector;
  /** Where the migrations are read from; the service's own by default. */
  migrationsFolder?: string;
  /** Where a migration's warning goes (standard error by default). */
  log?: MigrationLog;
  /**
   * A stop asked for while starting (its reason is thrown): ends a first connection to a server
   * that does not answer, a wait for another instance's migrations, the migrations between two
   * statements, or a statement's wait for a lock; a statement at work runs to its end.
   */
  signal?: AbortSignal | undefined;
  /** Seconds between two lines about a migration statement's wait for a lock (MIGRATION_LOCK_WAIT_S). */
  migrationLockWaitS?: number;
}

/** Connects; creates the database when missing and applies pending migrations, unless `migrate` says otherwise. */
export async function openDatabase(url: string, options: OpenOptions = {}): Promise<Database> {
  const server = connectionOptions(url);
  const migration = options.migrate ?? true;
  const { galera } = await untilAborted(ensureDatabase(server, migration !== "read-only"), options.signal);
  // Every operation locks the customer row first and then reads what it needs; READ COMMITTED
  // makes those reads see the latest committed rows and avoids gap locks. Row locks are held for
  // milliseconds, so a wait beyond lockWaitTimeoutS means trouble: fail (and retry) early
  // instead of InnoDB's 50 s default. The statements run before any other on the connection.
  const lockWaitTimeoutS = options.lockWaitTimeoutS ?? LOCK_WAIT_TIMEOUT_S_DEFAULT;
  if (!Number.isInteger(lockWaitTimeoutS) || lockWaitTimeoutS < 1) throw new Error("lockWaitTimeoutS must be a positive integer");
  const sessionSetup = [
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    `SET SESSION innodb_lock_wait_timeout = ${lockWaitTimeoutS}`,
  ];
  const poolOptions: PoolOptions = {
    ...server.connection,
    connectionLimit: options.poolSize ?? 20,
    maxIdle: options.poolSize ?? 20,
    enableKeepAlive: true,
  };
  const statementTimeoutMs = lockWaitTimeoutS * 1000 + STATEMENT_TIMEOUT_MARGIN_MS;
  const open = (pooled: PoolOptions): Opened =>
    server.hosts.length === 1 && !galera
      ? singleServer(pooled, server.hosts[0] as DatabaseHost, sessionSetup, statementTimeoutMs)
      : cluster(pooled, server.hosts, sessionSetup, options.nodeSelector ?? "order", galera, statementTimeoutMs);
  const opened = open(poolOptions);
  // drizzle calls getConnection, query and execute of its client, which both shapes provide.
  const db = drizzle(opened.pool as Pool, { schema, mode: "default" });
  const folder = options.migrationsFolder ?? MIGRATIONS_FOLDER;
  const name = server.connection.database;
  const ready =
    migration === "read-only"
      ? refuseMigrationsPending(opened.pool, name, folder).then(() => refuseTablesMissing(opened.pool, name))
      : migration
        ? migrateExclusively(open, poolOptions, name, folder, options.log ?? STDERR_LOG, {
            seconds: options.migrationLockWaitS,
            signal: options.signal,
          }).then(() => refuseTablesMissing(opened.pool, name))
        : null;
  await ready?.catch(async (error: unknown) => {
    await opened.pool.end().catch(() => undefined);
    throw error;
  });
  return { db, name: server.connection.database, galera, statementTimeoutMs, lockWaitTimeoutS, ...opened, close: () => opened.pool.end() };
}

type Opened = Pick<Database, "pool" | "singlePool" | "probe" | "nodeIds" | "nodesOut">;

function singleServer(options: PoolOptions, host: DatabaseHost, sessionSetup: readonly string[], statementTimeoutMs: number): Opened {
  const pool = mysql.createPool({ ...options, host: host.host, port: host.port });
  pool.pool.on("connection", (conn) => {
    const onError = (error: Error | null) => {
      if (error) conn.destroy();
    };
    for (const statement of sessionSetup) conn.query(statement, onError);
  });
  const server = new ServerPool(pool, statementTimeoutMs);
  return {
    pool: server,
    singlePool: pool,
    // Bounded, as a cluster's probes are: a hung server must not leave health saying SERVING.
    probe: boundedProbe(() => server.query({ sql: "SELECT 1", timeout: PROBE_TIMEOUT_MS }), PROBE_TIMEOUT_MS),
    nodeIds: [],
    nodesOut: () => [],
  };
}

/**
 * A probe answered within `boundMs`, its wait for a pooled connection included: with every
 * connection held by calls to a hung server, the query's own timeout starts only once it has one.
 * One query at most on its way: a probe that finds the last one still waiting waits for that one.
 */
function boundedProbe(run: () => Promise<unknown>, boundMs: number): () => Promise<ProbeOutcome> {
  let onItsWay: Promise<ProbeOutcome> | null = null;
  return async () => {
    // Never rejects; cleared once answered, so the next probe sends a query of its own.
    onItsWay ??= run()
      .then(
        (): ProbeOutcome => ({ ok: true }),
        (error: unknown): ProbeOutcome => ({ ok: false, error }),
      )
      .finally(() => {
        onItsWay = null;
      });
    const query = onItsWay;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<ProbeOutcome>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            ok: false,
            error: new Error(`the database answered no probe within ${boundMs} ms (no free connection, or no answer)`),
          }),
        boundMs,
      );
    });
    try {
      return await Promise.race([query, late]);
    } finally {
      clearTimeout(timer);
    }
  };
}

function cluster(
  options: PoolOptions,
  hosts: readonly DatabaseHost[],
  sessionSetup: readonly string[],
  selector: NodeSelector,
  galera: boolean,
  statementTimeoutMs: number,
): Opened {
  // On Galera, reads outside transactions are causal, so a read through one node sees what a
  // write through another returned (docs/architecture.md).
  const pool = new ClusterPool({ hosts, connection: options, selector, sessionSetup, causalReads: galera, statementTimeoutMs });
  return { pool, singlePool: null, probe: () => pool.probeNodes(), nodeIds: pool.nodeIds, nodesOut: () => pool.nodesOut };
}
