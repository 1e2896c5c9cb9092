import { type SQL, sql } from "./sql.js";
import { BillingError } from "../errors/billing-error.js";
import { isRowCountGuardFailure } from "./sql-errors.js";

/**
 * Follows a guarded UPDATE in a batch: fails the batch (errno 1242, isRowCountGuardFailure)
 * unless that UPDATE changed exactly `expected` rows. Batches end with COMMIT, so checking the
 * count in code afterwards would be too late; failing here stops the batch before its COMMIT,
 * and the transaction is rolled back. Plain SQL has no conditional error outside stored
 * programs (SIGNAL), so the guard makes a scalar subquery return two rows when the count is
 * wrong; ROW_COUNT() is the previous statement's count on MySQL and MariaDB alike.
 */
export function rowCountGuardSql(expected: number): SQL {
  return sql`SELECT ${guardSubquery(expected)} AS row_count_guard`;
}

/**
 * The same guard as a condition that the next statement (an UPDATE) carries in its WHERE, instead
 * of a statement of its own: true when the previous statement changed `expected` rows, the same
 * error (1242) when it did not. ROW_COUNT() is still the previous statement's while the carrying
 * statement runs.
 */
export function rowCountGuardCondition(expected: number): SQL {
  return sql`${guardSubquery(expected)} IS NULL`;
}

/** No row when the count is right, two (error 1242 where one value is expected) when it is not. */
function guardSubquery(expected: number): SQL {
  const wrong = sql`SELECT 1 FROM DUAL WHERE ROW_COUNT() <> ${sql.raw(String(Math.trunc(expected)))}`;
  return sql`(${wrong} UNION ALL ${wrong})`;
}

/** The UPDATE followed by its guard. */
export const guardedUpdateSql = (update: SQL, expectedRows: number): SQL[] => [update, rowCountGuardSql(expectedRows)];

/**
 * For a batch's catch: a guard that failed means rows are not what the transaction read under
 * lock, so nothing was committed and the call fails as server_error (logged with this cause);
 * anything else is rethrown as it is. The credit side has its own code for holds.
 */
export function rethrowGuardFailure(error: unknown): never {
  throw isRowCountGuardFailure(error) ? new BillingError("server_error", undefined, {}, { cause: error }) : error;
}
