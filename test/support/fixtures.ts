import type { Timestamp } from "../../gen/google/protobuf/timestamp.js";

export const SECOND = 1000;
export const DAY = 86_400_000;

export function ts(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
}

let counter = 0;
/** A fresh id for a test, readable in failures. */
export function uid(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}
