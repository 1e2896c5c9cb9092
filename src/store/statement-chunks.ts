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
