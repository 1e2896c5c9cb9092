/** Classification of driver failures by MySQL errno / Node error code, wherever drizzle wrapped them. */

const DEADLOCK = 1213;
/**
 * ER_AUTOINC_READ_FAILED: with innodb_autoinc_lock_mode = 1 (MariaDB's default) an INSERT … SELECT
 * takes the table's AUTO-INC lock, and the victim of a deadlock on it (two batches creating the
 * same new customers in other orders) gets this instead of 1213.
 */
const AUTOINC_DEADLOCK = 1467;
const LOCK_WAIT_TIMEOUT = 1205;
/** MySQL 8's answer to `FOR UPDATE NOWAIT` on a locked row (MariaDB answers LOCK_WAIT_TIMEOUT at once). */
const LOCK_NOWAIT = 3572;
const DUPLICATE_KEY = 1062;
const OUT_OF_RANGE = 1690;
/** "Subquery returns more than 1 row": raised on purpose by rowCountGuardSql, by nothing else of ours. */
const GUARD_FAILED = 1242;
/**
 * ER_NO_SUCH_TABLE at run time: the start refuses a database lacking a table (database.ts), so one
 * gone later was taken away under the running service (a restore reloading it).
 */
const NO_SUCH_TABLE = 1146;
/** ER_UNKNOWN_COM_ERROR: a Galera node outside the primary component refuses every statement. */
const NOT_PRIMARY = 1047;

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_CON_COUNT_ERROR",
  "ER_SERVER_SHUTDOWN",
  "POOL_CLOSED",
]);
// Connection-level errnos: too many connections, server shutdown, connection killed (MariaDB's
// 1927), and MySQL 8.0.24's 4031: the server closed a connection idle past wait_timeout, told to
// a statement sent at that instant.
const CONNECTION_ERRNOS = new Set([1040, 1053, 1927, 2002, 2003, 2006, 2013, 4031]);

interface DriverError {
  errno?: number;
  code?: string;
  message?: string;
  fatal?: boolean;
}

/**
 * The innermost error with a MySQL errno or a Node error code, or one mysql2 marks fatal without
 * either ("Can't add new command when connection is in closed state": the connection is gone).
 */
export function driverError(error: unknown): DriverError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const candidate = current as Error & DriverError;
    if (typeof candidate.errno === "number" || typeof candidate.code === "string" || candidate.fatal === true) return candidate;
    current = candidate.cause;
  }
  return undefined;
}

export function isRetryableConflict(error: unknown): boolean {
  return retryableConflictOf(error) !== null;
}

/** Which lock conflict failed the statement, if it was one worth retrying. */
export function retryableConflictOf(error: unknown): "deadlock" | "lock_wait_timeout" | null {
  const errno = driverError(error)?.errno;
  if (errno === DEADLOCK || errno === AUTOINC_DEADLOCK) return "deadlock";
  return errno === LOCK_WAIT_TIMEOUT ? "lock_wait_timeout" : null;
}

/** A locking read that found a row locked by another transaction: `NOWAIT`'s refusal (or a lock wait that timed out). */
export function isLockNotAvailable(error: unknown): boolean {
  const errno = driverError(error)?.errno;
  return errno === LOCK_NOWAIT || errno === LOCK_WAIT_TIMEOUT;
}

/** A duplicate on the named unique index (mysql2 quotes the key name in the message). */
export function isDuplicateOn(error: unknown, indexNames: readonly string[]): boolean {
  const found = driverError(error);
  if (found?.errno !== DUPLICATE_KEY) return false;
  return indexNames.some((name) => found.message?.includes(name) ?? false);
}

/** A table the service needs is not there now (NO_SUCH_TABLE): the database is being restored or rebuilt under it. */
export function isTableGone(error: unknown): boolean {
  return driverError(error)?.errno === NO_SUCH_TABLE;
}

export function isOutOfRange(error: unknown): boolean {
  return driverError(error)?.errno === OUT_OF_RANGE;
}

/** A guarded update changed another number of rows than planned (see rowCountGuardSql). */
export function isRowCountGuardFailure(error: unknown): boolean {
  return driverError(error)?.errno === GUARD_FAILED;
}

export function isConnectionFailure(error: unknown): boolean {
  const found = driverError(error);
  if (!found) return false;
  if (found.fatal === true) return true;
  if (found.errno !== undefined && CONNECTION_ERRNOS.has(found.errno)) return true;
  return found.code !== undefined && CONNECTION_CODES.has(found.code);
}

/**
 * A Galera node not part of the primary component answered. A statement it refuses up front ran
 * nothing; a COMMIT (or an autocommit write) it was running when it left may have committed, so
 * only reads are sent again on another node (cluster-pool.ts) and a lost COMMIT is never rerun.
 */
export function isNotPrimary(error: unknown): boolean {
  return driverError(error)?.errno === NOT_PRIMARY;
}
