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
export function rowChunksOf(rows: readonly SQL[]): SQL[][] {
  const chunks: SQL[][] = [];
  let current: SQL[] = [];
  let length = 0;
  for (const row of rows) {
    const rowLength = textLengthBound(row);
    if (current.length > 0 && (current.length >= ROWS_PER_STATEMENT || length + rowLength > STATEMENT_CHARS_MAX)) {
      chunks.push(current);
      current = [];
      length = 0;
    }
    current.push(row);
    length += rowLength;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
