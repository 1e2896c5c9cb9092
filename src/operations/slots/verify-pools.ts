import type { Reader } from "../../store/database.js";
import { readPoolsWithHistory } from "../../store/slots-store.js";

export interface PoolsReport {
  readonly pools: number;
  readonly problems: string[];
}

/**
 * Recomputes every pool from its append-only events: capacity = Σ GRANT_CAPACITY − Σ
 * REVOKE_CAPACITY, in_use = Σ CLAIM − Σ RELEASE = what its live holdings hold, and
 * 0 ≤ in_use ≤ capacity. Every difference is one line in `problems`.
 */
export async function verifyPools(db: Reader): Promise<PoolsReport> {
  const problems: string[] = [];
  const { pools, orphanPoolIds } = await readPoolsWithHistory(db);
  for (const p of pools) {
    const name = `pool ${p.id}`;
    const expect = (what: string, stored: bigint, wanted: bigint, source: string) => {
      if (stored !== wanted) problems.push(`${name}: ${what} is ${stored}, ${source} give ${wanted}`);
    };
    expect("capacity", p.capacity, p.capacityFromEvents, "its events");
    expect("in_use", p.inUse, p.inUseFromEvents, "its events");
    expect("in_use", p.inUse, p.held, "its holdings");
    if (p.inUse < 0n || p.inUse > p.capacity) problems.push(`${name}: in_use is outside 0..capacity`);
  }
  for (const id of orphanPoolIds) problems.push(`slot events reference missing pool ${id}`);
  return { pools: pools.length, problems };
}
