import mysql, { type SqlValue, type Timezone } from "mysql2/promise";

/**
 * How mysql2 turns a query and its values into the text it sends (its `queryFormat` option).
 * Its own way scans the whole text for `?` placeholders even when there is no value to put in:
 * `query(sql)` formats with an empty list. The statements of a transaction arrive with every
 * value escaped in already (run-transaction.ts, inlineStatement), so a text without values goes
 * as it is; one with values goes through mysql2's own `format`, as before (with the connection's
 * time zone, objects not stringified: mysql2's defaults).
 */
export function queryFormat(sql: string, values: SqlValue | SqlValue[] | undefined, timezone?: Timezone): string {
  if (values === undefined || values === null || (Array.isArray(values) && values.length === 0)) return sql;
  return mysql.format(sql, values, false, timezone);
}
