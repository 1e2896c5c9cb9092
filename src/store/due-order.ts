import { and, type Column, eq, gt, notInArray, or, type SQL } from "drizzle-orm";

/** A place in a sweeper's due order: a time, then a row id. */
export interface DueCursor {
  readonly atMs: number;
  readonly pk: bigint;
}

/**
 * The rows past `after` in the order (`time`, `id`) as a condition; none from the head. `atTime`
 * turns the cursor's milliseconds into the time column's values.
 */
export function pastCursorSql(time: Column, atTime: (ms: number) => unknown, id: Column, after: DueCursor | null): SQL | undefined {
  if (after === null) return undefined;
  const at = atTime(after.atMs);
  return or(gt(time, at), and(eq(time, at), gt(id, after.pk)));
}

/** Rows not of the customers a sweep found busy (none to leave out: no condition). */
export const notOfCustomersSql = (customerPk: Column, busy: ReadonlySet<bigint>): SQL | undefined =>
  busy.size === 0 ? undefined : notInArray(customerPk, [...busy]);
