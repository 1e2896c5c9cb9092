import type { PoolConnection, RowDataPacket } from "mysql2/promise";
import type { ConnectionSource } from "./cluster-pool.js";
import { driverError } from "./sql-errors.js";

// How a migration statement waits for locks. A schema change waits for its table's metadata lock,
// which any session with a transaction open on that table holds, for the server's
// lock_wait_timeout (a day on MariaDB): in silence, before this. It is not cut short here: an
// online ALTER or CREATE INDEX takes that lock again at the end of its build, and one that timed
// out then would throw its build away (seen: an index built twice). It is said instead, from the
// migrations' other connection. A row-lock wait (an UPDATE of a migration) is cut short and tried
// again: the statement did nothing.

/** How often a migration statement waiting for a lock says so (and a row-lock wait is tried again). */
export const MIGRATION_LOCK_WAIT_S = 30;
const LOCK_WAIT_TIMEOUT_ERRNO = 1205;
const QUERY_INTERRUPTED_ERRNO = 1317;
const SERVER_SQL = "CONCAT(@@hostname, ':', @@port)";
/** What a line says instead of the open transactions when the pool's other connection is on another node. */
const ON_ANOTHER_SERVER = "not listed: the migrations' other connection is on another server";

export interface MigrationLog {
  warn(facts: object, message: string): void;
}

/** How a run's statements wait for locks. */
export interface LockWaits {
  /** Seconds between two lines about a wait (MIGRATION_LOCK_WAIT_S). */
  readonly seconds?: number | undefined;
  /** A stop asked for while starting: a lock wait is interrupted and the reason thrown. */
  readonly signal?: AbortSignal | undefined;
}

/** The connection the migrations run on, and the pool's other one, which watches it (the lease renewals share that one). */
export interface MigrationSession {
  readonly connection: PoolConnection;
  readonly connectionId: number;
  /** The server it is on (host:port): on a cluster, a connection id names a session of one node only. */
  readonly server: string;
  readonly watcher: ConnectionSource;
  readonly waitS: number;
  readonly signal: AbortSignal | undefined;
  readonly log: MigrationLog;
}

export async function migrationSession(
  connection: PoolConnection,
  watcher: ConnectionSource,
  log: MigrationLog,
  locks: LockWaits,
): Promise<MigrationSession> {
  const waitS = locks.seconds ?? MIGRATION_LOCK_WAIT_S;
  await connection.query(`SET SESSION innodb_lock_wait_timeout = ${waitS}`);
  const [rows] = await connection.query<RowDataPacket[]>(`SELECT CONNECTION_ID() AS id, ${SERVER_SQL} AS server`);
  return { connection, connectionId: Number(rows[0]?.id), server: String(rows[0]?.server), watcher, waitS, signal: locks.signal, log };
}

/**
 * Runs one migration statement. While it waits for a table's metadata lock it says so every
 * `waitS` with the open transactions it may wait behind; a row-lock wait times out after `waitS`,
 * is said, and tried again. A stop asked for meanwhile interrupts a lock wait (the statement then
 * did nothing) and throws the signal's reason.
 */
export async function runMigrationStatement(
  session: MigrationSession,
  statement: string,
  which: { readonly migration: string; readonly statement: number },
): Promise<void> {
  for (let tries = 1; ; tries++) {
    const watch = watchLockWait(session, which);
    try {
      await session.connection.query(statement);
      return;
    } catch (error) {
      const errno = driverError(error)?.errno;
      if (session.signal?.aborted && (errno === QUERY_INTERRUPTED_ERRNO || errno === LOCK_WAIT_TIMEOUT_ERRNO)) throw session.signal.reason;
      if (errno !== LOCK_WAIT_TIMEOUT_ERRNO) throw error;
      // Only said: a failure to list them never fails the migration.
      const openTransactions = await onWatcher(session, (c) => openTransactionsOf(c, session.connectionId)).catch(
        (listing: unknown) => `not listed (${driverError(listing)?.code ?? "error"})`,
      );
      session.log.warn(
        { ...which, tries, openTransactions: openTransactions ?? ON_ANOTHER_SERVER },
        "a migration statement waits for a row lock; trying again",
      );
    } finally {
      watch.stop();
    }
  }
}

/** Says every `waitS` that the statement waits for a table's metadata lock; interrupts that wait on a stop. */
function watchLockWait(session: MigrationSession, which: object): { stop(): void } {
  const { connectionId, waitS, signal, log } = session;
  let waitedS = 0;
  const timer = setInterval(() => {
    waitedS += waitS;
    // As of this tick: the next one may come while this one still reads the server.
    const waited = waitedS;
    void onWatcher(session, async (c) => {
      if (!/metadata lock/i.test(await stateOf(c, connectionId))) return;
      log.warn(
        { ...which, waitedS: waited, openTransactions: await openTransactionsOf(c, connectionId) },
        "a migration statement waits for a table lock",
      );
    }).catch(() => undefined);
  }, waitS * 1000);
  // Only a wait is interrupted: a statement at work (a table copy, an index build) runs on.
  const interrupt = () =>
    void onWatcher(session, async (c) => {
      if (/lock/i.test(await stateOf(c, connectionId))) await c.query(`KILL QUERY ${connectionId}`);
    }).catch(() => undefined);
  signal?.addEventListener("abort", interrupt);
  return {
    stop() {
      clearInterval(timer);
      signal?.removeEventListener("abort", interrupt);
    },
  };
}

/**
 * Runs `work` on one connection of the watcher's pool, when it is on the migrations' server (on
 * another node of a cluster, their connection id would name a stranger's session); else null.
 */
async function onWatcher<T>(session: MigrationSession, work: (c: PoolConnection) => Promise<T>): Promise<T | null> {
  const c = await session.watcher.getConnection();
  try {
    const [rows] = await c.query<RowDataPacket[]>(`SELECT ${SERVER_SQL} AS server`);
    return String(rows[0]?.server) === session.server ? await work(c) : null;
  } finally {
    c.release();
  }
}

/** The state of the migrations' session (its PROCESSLIST row; a user sees its own sessions). */
async function stateOf(c: PoolConnection, connectionId: number): Promise<string> {
  const [rows] = await c.query<RowDataPacket[]>("SELECT STATE AS state FROM information_schema.PROCESSLIST WHERE ID = ?", [connectionId]);
  return String(rows[0]?.state ?? "");
}

/**
 * The five oldest open transactions (what a lock wait is usually behind), those of sessions in
 * this database first: connection id, user, host, when it started (the server's time) and how
 * long its session has been idle. Reading them needs the PROCESS privilege; without it, says so.
 */
async function openTransactionsOf(c: PoolConnection, migrating: number): Promise<object[] | string> {
  try {
    const [rows] = await c.query<RowDataPacket[]>(
      `SELECT p.ID AS id, p.USER AS user, p.HOST AS host, DATE_FORMAT(t.trx_started, '%Y-%m-%d %H:%i:%s') AS started, p.TIME AS idle
       FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
       WHERE p.ID <> ? ORDER BY p.DB <=> DATABASE() DESC, t.trx_started LIMIT 5`,
      [migrating],
    );
    return rows.map((r) => ({
      id: Number(r.id),
      user: String(r.user),
      host: String(r.host),
      started: String(r.started),
      idleS: Number(r.idle),
    }));
  } catch (error) {
    return `not readable (${driverError(error)?.code ?? "error"}: the database user needs the PROCESS privilege to list them)`;
  }
}
