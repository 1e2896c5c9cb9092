import { SQL } from "./sql.js";

/**
 * Rows per multi-row statement. A call may touch thousands of accounts; one statement per
 * thousand rows keeps each statement's parameter list small (drizzle merges parameter lists
 * with `push(...params)`, which overflows the stack at about 10^5 parameters).
 */
export const ROWS_PER_STATEMENT = 1000;

/** `items` in consecutive slices of at most `size`. */
export function chunksOf<T>(items: readonly T[], size: number = ROWS_PER_STATEMENT): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
}

/**
 * Characters a multi-row statement may hold (estimated by textLengthBound) before the next rows go
 * in another statement: a statement travels in one packet, which max_allowed_packet bounds (16 MiB
 * by default on MariaDB), and a Batch of 100 Deducts with the largest metadata of control
 * characters (each escaped to 7) made one INSERT of 23 MB that the server refused.
 */
export const STATEMENT_CHARS_MAX = 1024 * 1024;

/**
 * At most how many characters `fragment` takes once its values are escaped into the text: a string
 * doubles at worst (every character escaped) plus its quotes; a number, date or name takes a few.
 */
export function textLengthBound(fragment: SQL): number {
  let length = 0;
  for (const text of fragment.strings) length += text.length;
  for (const value of fragment.values) {
    if (typeof value === "string") length += 2 * value.length + 2;
    else if (value instanceof SQL) length += textLengthBound(value);
    else length += 64;
  }
  return length;
}

/**
 * Rows in consecutive slices of at most ROWS_PER_STATEMENT rows and STATEMENT_CHARS_MAX characters
 * (a row larger than that alone), for multi-row statements.
 */
export const rowChunksOf = (rows: readonly SQL[]): SQL[][] => groupsWithin(rows, textLengthBound, STATEMENT_CHARS_MAX, ROWS_PER_STATEMENT);

/**
 * `items` in consecutive groups of at most `sizeMax` in size together (by `sizeOf`) and `countMax`
 * items; an item larger than `sizeMax` goes alone.
 */
export function groupsWithin<T>(
  items: readonly T[],
  sizeOf: (item: T) => number,
  sizeMax: number,
  countMax = Number.POSITIVE_INFINITY,
): T[][] {
  const groups: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const item of items) {
    const itemSize = sizeOf(item);
    if (current.length > 0 && (current.length >= countMax || size + itemSize > sizeMax)) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += itemSize;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
