import { type SQL, sql } from "./sql.js";

/**
 * Rows named by a prefix and a key, as one `(<prefix> AND <column> IN (…))` per prefix, joined by
 * OR. A list of writes names its customers, keys or holds this way: the database resolves each
 * IN list over the unique index in one range read, where a condition (or a subquery) per row cost
 * it 1.6 to 2 times as much for a list of 32 (docs/scaling.md).
 */
export function keyListsSql<T>(
  items: readonly T[],
  prefixOf: (item: T) => { readonly id: string; readonly condition: SQL },
  column: SQL,
  keyOf: (item: T) => string,
): SQL {
  const groups = new Map<string, { condition: SQL; keys: string[] }>();
  for (const item of items) {
    const prefix = prefixOf(item);
    const group = groups.get(prefix.id) ?? { condition: prefix.condition, keys: [] };
    group.keys.push(keyOf(item));
    groups.set(prefix.id, group);
  }
  if (groups.size === 0) return sql`FALSE`;
  return sql.join(
    [...groups.values()].map(
      (g) =>
        sql`(${g.condition} AND ${column} IN (${sql.join(
          g.keys.map((k) => sql`${k}`),
          sql`, `,
        )}))`,
    ),
    sql` OR `,
  );
}

/** The prefix of rows keyed within a project: `<alias>.project_id = …`, one IN list per project. */
export const byProject =
  (alias: SQL) =>
  (item: { readonly projectId: bigint }): { readonly id: string; readonly condition: SQL } => ({
    id: String(item.projectId),
    condition: sql`${alias}.project_id = ${item.projectId}`,
  });
