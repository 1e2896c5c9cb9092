import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type MigrationMeta, readMigrationFiles } from "drizzle-orm/migrator";
import type { PoolConnection, RowDataPacket } from "mysql2/promise";
import type { ConnectionSource } from "./cluster-pool.js";
import { DatabaseNotReadyError } from "./database-errors.js";
import { type LockWaits, type MigrationLog, type MigrationSession, migrationSession, runMigrationStatement } from "./migration-locks.js";
import { driverError } from "./sql-errors.js";

export type { LockWaits, MigrationLog } from "./migration-locks.js";

// The migrations, applied as drizzle's migrator applies them (its `__drizzle_migrations` table and
// its rule: every migration newer than the newest applied one), with what it lacks:
//
// - MySQL and MariaDB commit each DDL statement at once, so a run stopped part way through a
//   migration (a pod killed during a long table copy) left its first statements applied and the
//   migration unrecorded; every later run then failed on its first statement ("Duplicate CHECK
//   constraint name"), for good. Each statement is marked started, then done, here
//   (`__migration_progress`), so a later run goes on from the next one. The one statement a run
//   started and never recorded may have committed: run again, it is taken as done when it fails
//   because what it makes is there already (or what it drops is gone). Any other failure, and
//   that same failure of a statement no run had started unrecorded, stops the run, named.
// - Statements run on a connection of their own, without the pool's statement timeout: a table
//   copy may take minutes.
// - A migration older than the newest applied one but never applied (a database made by a build
//   whose migrations were numbered otherwise) was skipped without a word. It is refused, named.
// - A statement that waits for a lock (a schema change behind a session with a transaction open on
//   its table: the server's lock_wait_timeout is a day) waited in silence. It now says so, and a
//   stop asked for while starting ends the run between statements or during a lock wait
//   (migration-locks.ts).

const PROGRESS_TABLE = "__migration_progress";
/** What a statement run again finds when its first run committed: what it creates exists, or what it drops is gone. */
const DONE_ALREADY_ERRNOS = new Set([
  1050, // table exists
  1060, // duplicate column
  1061, // duplicate key name
  1062, // duplicate entry: a copy (INSERT … SELECT) made already
  1068, // multiple primary key
  1091, // can't drop: no such column or key
  1051, // unknown table (dropped already)
  1359, // trigger exists
  1360, // trigger does not exist (dropped already)
  1826, // duplicate CHECK constraint name (MariaDB)
  3822, // duplicate check constraint name (MySQL)
  3821, // check constraint not found (dropped already, MySQL)
  3940, // constraint not found (dropped already, MySQL 8.0.19+)
]);

/** What runs a query: the pool, or the one connection the migrations hold. */
type Queryable = Pick<PoolConnection, "query">;

/** A migration file with its name (the journal's tag). */
interface Migration extends MigrationMeta {
  readonly tag: string;
}

/** A migration that failed: which one, at which statement, and the database's words. */
export class MigrationFailedError extends DatabaseNotReadyError {}

function migrationsIn(folder: string): Migration[] {
  const journal = JSON.parse(readFileSync(join(folder, "meta", "_journal.json"), "utf8")) as {
    entries: { when: number; tag: string }[];
  };
  const tags = new Map(journal.entries.map((e) => [e.when, e.tag]));
  return readMigrationFiles({ migrationsFolder: folder }).map((m) => ({ ...m, tag: tags.get(m.folderMillis) ?? String(m.folderMillis) }));
}

/** The migrations of `folder` this database still needs, in order; throws when one older than the newest applied is missing. */
export async function pendingMigrations(source: Queryable, database: string, folder: string): Promise<Migration[]> {
  const [tables] = await source.query<RowDataPacket[]>(
    "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = '__drizzle_migrations'",
    [database],
  );
  const migrations = migrationsIn(folder);
  if (tables.length === 0) return migrations;
  const [applied] = await source.query<RowDataPacket[]>("SELECT hash, created_at FROM __drizzle_migrations");
  const hashes = new Set(applied.map((row) => String(row.hash)));
  const times = new Set(applied.map((row) => Number(row.created_at)));
  const newest = Math.max(0, ...times);
  const missing = migrations.find((m) => m.folderMillis <= newest && !times.has(m.folderMillis) && !hashes.has(m.hash));
  if (missing) {
    throw new DatabaseNotReadyError(
      `database ${database} lacks migration ${missing.tag}, though newer ones are applied (it was made by a build whose migrations were numbered otherwise): see README, "Upgrading"`,
    );
  }
  return migrations.filter((m) => m.folderMillis > newest);
}

/** Applies the pending migrations of `folder`, statement by statement, going on from where an interrupted run stopped. */
export async function applyMigrations(
  pool: ConnectionSource,
  database: string,
  folder: string,
  log: MigrationLog,
  locks: LockWaits = {},
): Promise<void> {
  const connection = await pool.getConnection();
  try {
    const session = await migrationSession(connection, pool, log, locks);
    await connection.query(
      "CREATE TABLE IF NOT EXISTS `__drizzle_migrations` (id serial primary key, hash text not null, created_at bigint)",
    );
    await connection.query(
      `CREATE TABLE IF NOT EXISTS \`${PROGRESS_TABLE}\` (created_at BIGINT NOT NULL PRIMARY KEY, statements_done INT NOT NULL, statement_started INT NULL)`,
    );
    // Everything on this one connection: the pool's other renews the migrations lease.
    for (const migration of await pendingMigrations(connection, database, folder)) await applyMigration(session, migration);
    // A run stopped between recording a migration and forgetting its progress left the row behind.
    await connection.query(`DELETE p FROM \`${PROGRESS_TABLE}\` p JOIN __drizzle_migrations m ON m.created_at = p.created_at`);
  } finally {
    connection.release();
  }
}

async function applyMigration(session: MigrationSession, migration: Migration): Promise<void> {
  const { connection, log, signal } = session;
  const [progress] = await connection.query<RowDataPacket[]>(
    `SELECT statements_done, statement_started FROM \`${PROGRESS_TABLE}\` WHERE created_at = ?`,
    [migration.folderMillis],
  );
  const resumeAt = Number(progress[0]?.statements_done ?? 0);
  const startedUnrecorded = progress[0]?.statement_started !== null && Number(progress[0]?.statement_started) === resumeAt;
  const statements = migration.sql.filter((statement) => statement.trim() !== "");
  const mark = (done: number, started: number | null) =>
    connection.query(
      `INSERT INTO \`${PROGRESS_TABLE}\` (created_at, statements_done, statement_started) VALUES (?, ?, ?)
       ON DUPLICATE KEY UPDATE statements_done = ?, statement_started = ?`,
      [migration.folderMillis, done, started, done, started],
    );
  for (let i = resumeAt; i < statements.length; i++) {
    // A stop asked for while starting ends the run here, between two statements: the next run goes on from this one.
    signal?.throwIfAborted();
    await mark(i, i);
    try {
      await runMigrationStatement(session, statements[i] as string, { migration: migration.tag, statement: i + 1 });
    } catch (error) {
      const errno = driverError(error)?.errno;
      if (i !== resumeAt || !startedUnrecorded || errno === undefined || !DONE_ALREADY_ERRNOS.has(errno)) {
        await mark(i, null);
        // A stop that interrupted a lock wait: the statement did nothing, and the start ends as asked.
        if (signal?.aborted && error === signal.reason) throw error;
        throw failed(migration, i, statements.length, error);
      }
      log.warn(
        { migration: migration.tag, statement: i + 1, errno },
        "a migration statement was applied already by a run that stopped part way; going on from the next",
      );
    }
    await mark(i + 1, null);
  }
  await connection.query("INSERT INTO __drizzle_migrations (hash, created_at) VALUES (?, ?)", [migration.hash, migration.folderMillis]);
  await connection.query(`DELETE FROM \`${PROGRESS_TABLE}\` WHERE created_at = ?`, [migration.folderMillis]);
}

function failed(migration: Migration, index: number, count: number, error: unknown): MigrationFailedError {
  const found = driverError(error);
  const words = found?.message ?? (error instanceof Error ? error.message : String(error));
  return new MigrationFailedError(
    `migration ${migration.tag} failed at statement ${index + 1} of ${count} (${found?.errno ?? found?.code ?? "no code"}: ${words}); ` +
      `the ${index} before it are applied and recorded, and the next run goes on from it: see README, "Upgrading"`,
    { cause: error },
  );
}
