import { fileURLToPath } from "node:url";
import { drizzle, type MySql2Database } from "drizzle-orm/mysql2";
import { migrate } from "drizzle-orm/mysql2/migrator";
import mysql, { type Pool, type PoolOptions } from "mysql2/promise";
import { withNamedLock } from "./named-lock.js";
import * as schema from "./schema.js";

export type Db = MySql2Database<typeof schema>;

export interface Database {
  readonly db: Db;
  readonly pool: Pool;
  readonly name: string;
  close(): Promise<void>;
}

const MIGRATIONS_FOLDER = fileURLToPath(new URL("./migrations", import.meta.url));
const CONNECT_TIMEOUT_MS = 5_000;
/** Row locks are held for milliseconds; a longer wait means trouble (see openDatabase). */
export const LOCK_WAIT_TIMEOUT_S_DEFAULT = 5;

/** Thrown when the server cannot be reached or refuses us; main turns it into one clear line. */
export class DatabaseUnreachableError extends Error {}

function connectionOptions(url: string): PoolOptions & { database: string } {
  const u = new URL(url);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ""));
  if (!/^[A-Za-z0-9_]{1,64}$/.test(database)) {
    throw new DatabaseUnreachableError(`database name must be 1-64 characters of [A-Za-z0-9_], got "${database}"`);
  }
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database,
    // Times are UTC on both sides; big integers arrive as strings, never as lossy numbers.
    timezone: "Z",
    supportBigNumbers: true,
    bigNumberStrings: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // Operations send their statements in batches (one round trip each, see run-transaction.ts).
    // Every value is a bound parameter, so batching adds no injection surface.
    multipleStatements: true,
  };
}

/** Creates the database if it is missing; fails with DatabaseUnreachableError. */
async function ensureDatabase(options: PoolOptions & { database: string }): Promise<void> {
  const { database, ...serverOptions } = options;
  let connection: mysql.Connection | undefined;
  try {
    connection = await mysql.createConnection(serverOptions);
    await connection.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new DatabaseUnreachableError(reason || (error as { code?: string }).code || "connection failed", {
      cause: error,
    });
  } finally {
    await connection?.end().catch(() => undefined);
  }
}

/** Applies pending migrations while holding a named lock, so instances starting together take turns. */
const migrateExclusively = (pool: Pool, db: Db, database: string): Promise<void> =>
  withNamedLock(pool, database, "migrations", () => migrate(db, { migrationsFolder: MIGRATIONS_FOLDER }));

export interface OpenOptions {
  poolSize?: number;
  migrate?: boolean;
  /** innodb_lock_wait_timeout of every pooled connection (DB_LOCK_WAIT_TIMEOUT_S). */
  lockWaitTimeoutS?: number;
}

/** Connects, creates the database when missing and applies pending migrations. */
export async function openDatabase(url: string, options: OpenOptions = {}): Promise<Database> {
  const connection = connectionOptions(url);
  await ensureDatabase(connection);
  const pool = mysql.createPool({
    ...connection,
    connectionLimit: options.poolSize ?? 20,
    maxIdle: options.poolSize ?? 20,
    enableKeepAlive: true,
  });
  // Every operation locks the customer row first and then reads what it needs; READ COMMITTED
  // makes those reads see the latest committed rows and avoids gap locks. Row locks are held for
  // milliseconds, so a wait beyond lockWaitTimeoutS means trouble: fail (and retry) early
  // instead of InnoDB's 50 s default. The statement is queued before any other on the connection.
  const lockWaitTimeoutS = options.lockWaitTimeoutS ?? LOCK_WAIT_TIMEOUT_S_DEFAULT;
  if (!Number.isInteger(lockWaitTimeoutS) || lockWaitTimeoutS < 1) throw new Error("lockWaitTimeoutS must be a positive integer");
  pool.pool.on("connection", (conn) => {
    const onError = (error: Error | null) => {
      if (error) conn.destroy();
    };
    conn.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", onError);
    conn.query(`SET SESSION innodb_lock_wait_timeout = ${lockWaitTimeoutS}`, onError);
  });
  const db = drizzle(pool, { schema, mode: "default" });
  if (options.migrate ?? true) await migrateExclusively(pool, db, connection.database);
  return {
    db,
    pool,
    name: connection.database,
    close: () => pool.end(),
  };
}
