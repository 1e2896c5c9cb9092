import type { Reader } from "../store/database.js";
import { OPERATIONS_OF_EVENT_TYPE } from "../domain/ledger-events.js";
import { checkedMarkOf } from "../store/event-feed-store.js";
import { feedRewoundUnder } from "./events/nats-publisher.js";
import {
  bigOfRow as big,
  countOfRow,
  eventEntryMismatches,
  eventPositions,
  eventShapeMismatches,
  firstMissingPosition,
  projectEventPositions,
  publisherMarks,
  type VerifyRow,
} from "../store/verify-store.js";

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
  if (global) problems.push(...(await rangeProblems(db, "the feed", global, null)));
  for (const p of await projectEventPositions(db))
    problems.push(...(await rangeProblems(db, `project ${p.project_id}'s feed`, p, p.project_id ?? null)));
  const lines = [
    ...(await eventEntryMismatches(db, OPERATIONS_OF_EVENT_TYPE, EVENT_LINES_MAX + 1)).map(mismatchLine),
    ...(await eventShapeMismatches(db, EVENT_LINES_MAX + 1)).map((e) =>
      flag(e.out_of_order)
        ? `event ${e.event_id}: its entries' sequences do not run on by one`
        : `event ${e.event_id}: its balance_after is not its last entry's`,
    ),
  ];
  problems.push(...lines.slice(0, EVENT_LINES_MAX));
  if (lines.length > EVENT_LINES_MAX) problems.push(`the feed: more events disagree with the ledger than the ${EVENT_LINES_MAX} above`);
  problems.push(...(await publisherProblems(db)));
  return { events, problems };
}

/**
 * A publisher whose stored position is not in this feed (feedRewoundUnder: a restore not taken in
 * one snapshot with it): the events numbered since would never be sent, and retention, held to
 * that position, could prune them. A running publisher mends it when it next takes its lease.
 */
async function publisherProblems(db: Reader): Promise<string[]> {
  const problems: string[] = [];
  for (const p of await publisherMarks(db)) {
    const mark = checkedMarkOf(p);
    const position = mark.sent.position;
    if (feedRewoundUnder(mark)) {
      problems.push(
        `the ${p.name} publisher's position ${position} is not in this feed (its top is ${mark.top}; the database was restored under it?): ` +
          "the events numbered since would not be sent; a publisher sends every kept event again when it next runs",
      );
    }
  }
  return problems;
}

/** Event findings said one line each, at most this many (one bad deposit can make every later event of its customer disagree). */
const EVENT_LINES_MAX = 20;

const flag = (v: VerifyRow[string] | undefined) => countOfRow(v) === 1;

function mismatchLine(m: VerifyRow): string {
  const entry = `event ${m.event_id}: entry #${m.seq} of customer ${m.customer_id} (project ${m.project_id})`;
  if (flag(m.customer_missing)) return `event ${m.event_id}: its customer ${m.customer_id} (project ${m.project_id}) does not exist`;
  if (m.entry_id === null) return `${entry} is not in the ledger`;
  const what = [
    flag(m.entry_differs) ? "operation, amount, account or credit type" : null,
    flag(m.balance_differs) ? "balance_after" : null,
  ].filter((w) => w !== null);
  if (what.length > 0) return `${entry} differs from ledger entry ${m.entry_id} in its ${what.join(" and ")}`;
  return `${entry} is ${m.operation}, which a ${m.type} event cannot hold`;
}

/** Positions kept run pruned + 1 … high, each once (the UNIQUE index sees to "once"); a gap is named by its first missing position. */
async function rangeProblems(db: Reader, feed: string, r: VerifyRow, projectId: VerifyRow[string] | null): Promise<string[]> {
  const stamped = big(r.stamped);
  if (stamped === 0n) return [];
  const pruned = big(r.pruned);
  const [low, high] = [big(r.low), big(r.high)];
  if (low === pruned + 1n && high - low + 1n === stamped) return [];
  const missing = low !== pruned + 1n ? pruned + 1n : await firstMissingPosition(db, projectId === null ? null : big(projectId), low);
  return [`${feed}: positions ${low}…${high} hold ${stamped} events after ${pruned} pruned; position ${missing} is missing`];
}
