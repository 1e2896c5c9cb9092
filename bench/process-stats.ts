import { readFileSync } from "node:fs";

/** CPU time (seconds) and memory of a process, from /proc (Linux). */
export interface ProcessSample {
  readonly cpuSeconds: number;
  readonly rssBytes: number;
  readonly atMs: number;
}

const CLOCK_TICKS_PER_SECOND = 100;

export function sampleProcess(pid: number): ProcessSample {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may contain spaces) start at ") ".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuSeconds: (utime + stime) / CLOCK_TICKS_PER_SECOND, rssBytes: rssKb * 1024, atMs: performance.now() };
}

/** Average CPU use between two samples, in percent of one core. */
export function cpuPercent(from: ProcessSample, to: ProcessSample): number {
  const wall = (to.atMs - from.atMs) / 1000;
  return wall > 0 ? ((to.cpuSeconds - from.cpuSeconds) / wall) * 100 : 0;
}
