/**
 * Puts `item` at the end of `line`. If `signal` aborts while the item is still in the line (its
 * caller left), the item is taken out and `left` runs, so that a caller gone holds no place a live
 * one could take. What it returns stops watching, for an item that left the line otherwise.
 */
export function waitInLine<T>(line: T[], item: T, signal: AbortSignal | undefined, left: () => void): () => void {
  line.push(item);
  if (!signal) return () => {};
  const leave = () => {
    const at = line.indexOf(item);
    if (at < 0) return;
    line.splice(at, 1);
    left();
  };
  signal.addEventListener("abort", leave, { once: true });
  return () => signal.removeEventListener("abort", leave);
}
