import type { Reader } from "../store/database.js";
import { eventEntryMismatches, eventPositions, projectEventPositions, type VerifyRow } from "../store/verify-store.js";

const big = (v: VerifyRow[string] | undefined): bigint => BigInt(v ?? 0);

/**
 * The change feed against the ledger: the kept events' positions run without a gap from just
 * past what was pruned (globally and per project), and each event's entries are the ledger's
 * entries of those sequences, as the ledger holds them. Events the outbox never wrote
 * (EVENTS_OUTBOX=off) or retention pruned are not missed here: neither is a fault. Events not
 * stamped yet are left out (the stamper stamps within milliseconds of their commit).
 */
export async function verifyEvents(db: Reader): Promise<{ events: number; problems: string[] }> {
  const problems: string[] = [];
  const [global] = await eventPositions(db);
  const events = Number(global?.stamped ?? 0);
  if (global) problems.push(...rangeProblems("the feed", global));
  for (const p of await projectEventPositions(db)) problems.push(...rangeProblems(`project ${p.project_id}'s feed`, p));
  for (const m of await eventEntryMismatches(db)) {
    problems.push(
      m.entry_id === null
        ? `event ${m.event_id}: entry #${m.seq} of customer ${m.customer_id} (project ${m.project_id}) is not in the ledger`
        : `event ${m.event_id}: entry #${m.seq} of customer ${m.customer_id} (project ${m.project_id}) differs from ledger entry ${m.entry_id}`,
    );
  }
  return { events, problems };
}

/** Positions kept run pruned + 1 … high, each once (the UNIQUE index sees to "once"). */
function rangeProblems(feed: string, r: VerifyRow): string[] {
  const stamped = big(r.stamped);
  if (stamped === 0n) return [];
  const pruned = big(r.pruned);
  const [low, high] = [big(r.low), big(r.high)];
  if (low === pruned + 1n && high - low + 1n === stamped) return [];
  return [`${feed}: positions ${low}…${high} hold ${stamped} events after ${pruned} pruned; expected ${pruned + 1n}…${pruned + stamped}`];
}
