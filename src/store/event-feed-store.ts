import type { ConnectionSource } from "./cluster-pool.js";
import { type SQL, sql } from "./sql.js";
import type { RowDataPacket } from "mysql2/promise";
import { customerKey } from "../domain/customer-ref.js";
import { stampOrder } from "../domain/event-order.js";
import { EVENT_TYPES, type EventType, type FeedEvent, parsePayload } from "../domain/events.js";
import type { Database } from "./database.js";
import { guardedUpdateSql } from "./row-count-guard.js";
import { bigOf, closedValueOf, msOf, stringOf } from "./row-values.js";
import { namedBatch, rowsOf, runTransaction } from "./run-transaction.js";

/**
 * The event feed's storage: stamping commit-order positions, reading the feed by position,
 * retention, and the publishers' stored positions. Readers only ever see stamped events.
 */

const PRUNED_THROUGH = "events_pruned_through";

/**
 * The highest position given so far: the newest event's, or, when retention has pruned every
 * event, the prune mark (numbering must go on from there: a reader's cursor, the publisher's
 * stored position and the prune marks all point past a position given again). One statement, so
 * a prune committing meanwhile is seen whole or not at all.
 */
const TOP_POSITION = `GREATEST(COALESCE((SELECT MAX(position) FROM events), 0),
  COALESCE((SELECT CAST(value AS UNSIGNED) FROM settings WHERE name = '${PRUNED_THROUGH}'), 0))`;

/** A lease the stamping transaction checks, under lock, before it stamps. */
export interface LeaseHeld {
  readonly name: string;
  readonly owner: string;
}

/**
 * Gives the next positions (gapless, after the highest given), and each event its project's next
 * project position, to up to `limit` committed, unstamped events, in one transaction that first
 * locks the stamper's lease row and checks it still holds it: a stamper whose lease expired (a
 * long pause) stamps nothing. The UNIQUE indexes on both refuse a second stamper's overlapping
 * positions whatever happens. Returns the number stamped, or null when the lease is not held.
 */
export async function stampCommittedEvents(database: Database, lease: LeaseHeld, limit: number): Promise<number | null> {
  return runTransaction(database, async (tx) => {
    const read = await tx.runBatch(
      namedBatch({
        held: [sql`SELECT owner FROM leases WHERE name = ${lease.name} AND owner = ${lease.owner} AND expires_at > NOW(3) FOR UPDATE`],
        top: [sql`SELECT ${sql.raw(TOP_POSITION)} AS top`],
        // Both reads go by an index whatever the table holds: the unstamped rows are the NULL
        // entries of the position index (a scan of the primary key in id order read every stamped
        // row first), and a project's top is one step down its (project_id, project_position) index
        // (a correlated MAX read all of the project's entries, once per row). No derived table: one
        // holding the payload's JSON was materialized on disk, once per round.
        unstamped: [
          sql`SELECT e.id, e.project_id, e.customer_id,
            JSON_UNQUOTE(JSON_EXTRACT(e.payload, '$.entries[0].sequence')) AS sequence,
            GREATEST(
              COALESCE((SELECT p.project_position FROM events p
                WHERE p.project_id = e.project_id AND p.project_position IS NOT NULL
                ORDER BY p.project_position DESC LIMIT 1), 0),
              COALESCE((SELECT m.pruned_through FROM event_prune_marks m WHERE m.project_id = e.project_id), 0)
            ) AS project_top
          FROM events e FORCE INDEX (events_position_uq) WHERE e.position IS NULL ORDER BY e.id LIMIT ${Math.trunc(limit)}`,
        ],
      }),
    );
    if (rowsOf(read.held[0]).length === 0) return null;
    const rows = rowsOf(read.unstamped[0]);
    if (rows.length === 0) return 0;
    const first = bigOf(rowsOf(read.top[0])[0]?.top) + 1n;
    const order = stampOrder(
      rows.map((r) => ({
        id: bigOf(r.id),
        customerKey: r.customer_id === null ? null : customerKey({ projectId: bigOf(r.project_id), customerId: stringOf(r.customer_id) }),
        sequence: typeof r.sequence === "string" && /^\d+$/.test(r.sequence) ? BigInt(r.sequence) : null,
      })),
    );
    const projectOf = new Map(rows.map((r) => [bigOf(r.id), String(r.project_id)]));
    const projectNext = new Map(rows.map((r) => [String(r.project_id), bigOf(r.project_top) + 1n]));
    const stamps = order.map((id, i) => {
      const project = projectOf.get(id) as string;
      const projectPosition = projectNext.get(project) as bigint;
      projectNext.set(project, projectPosition + 1n);
      return { id, position: first + BigInt(i), projectPosition };
    });
    await tx.run(guardedUpdateSql(stampSql(stamps), stamps.length), { commit: true });
    return stamps.length;
  });
}

function stampSql(stamps: readonly { id: bigint; position: bigint; projectPosition: bigint }[]): SQL {
  const cases = (value: (s: (typeof stamps)[number]) => bigint) =>
    sql.join(
      stamps.map((s) => sql`WHEN ${s.id} THEN ${value(s)}`),
      sql` `,
    );
  const list = sql.join(
    stamps.map((s) => sql`${s.id}`),
    sql`, `,
  );
  return sql`UPDATE events SET position = CASE id ${cases((s) => s.position)} END,
      project_position = CASE id ${cases((s) => s.projectPosition)} END
    WHERE id IN (${list}) AND position IS NULL`;
}

/** The highest position given so far (0 before the first), pruned ones included. */
export async function lastPosition(pool: ConnectionSource): Promise<bigint> {
  const [rows] = await pool.query<RowDataPacket[]>(`SELECT ${TOP_POSITION} AS top`);
  return bigOf(rows[0]?.top);
}

/** Whether any committed event waits for its position: one index probe, no transaction (the stamper's idle poll). */
export async function hasUnstamped(pool: ConnectionSource): Promise<boolean> {
  const [rows] = await pool.query<RowDataPacket[]>("SELECT 1 AS found FROM events WHERE position IS NULL LIMIT 1");
  return rows.length > 0;
}

/** Every position up to this one has been pruned (0: none). */
export async function prunedThrough(pool: ConnectionSource): Promise<bigint> {
  const [rows] = await pool.query<RowDataPacket[]>("SELECT value FROM settings WHERE name = ?", [PRUNED_THROUGH]);
  const value = rows[0]?.value;
  return value === undefined ? 0n : bigOf(value);
}

/** Every project position of the project up to this one has been pruned (0: none). */
export async function projectPrunedThrough(pool: ConnectionSource, projectId: bigint): Promise<bigint> {
  const [rows] = await pool.query<RowDataPacket[]>("SELECT pruned_through FROM event_prune_marks WHERE project_id = ?", [
    projectId.toString(),
  ]);
  return rows[0] === undefined ? 0n : bigOf(rows[0].pruned_through);
}

/**
 * Which stamped events a reader wants. A project's reader pages by project position (its cursors
 * say nothing of other projects); without a project (the publisher, the operators' tail), by the
 * global position.
 */
export interface FeedFilter {
  /** null: every project, by global position. */
  readonly projectId: bigint | null;
  /** A project position with a project, else a global one. */
  readonly after: bigint;
  readonly customerId: string | null;
  /** Empty: every type. */
  readonly types: readonly string[];
}

/** Up to `limit` stamped events after `filter.after`, in commit order. */
export async function readFeed(pool: ConnectionSource, filter: FeedFilter, limit: number): Promise<FeedEvent[]> {
  const query = feedQuery(filter, limit);
  const [rows] = await pool.query<RowDataPacket[]>(query.sql, query.params);
  return rows.map(feedEventOf);
}

/** What readFeedChecked reads in one round trip. */
export interface CheckedRead {
  /**
   * The highest position (of the filter's kind) of the events kept before the rows were read (0
   * when retention has pruned them all: the reader keeps its cursor then): every event up
   * to it was there to be read (stamps commit whole and in order), so a reader whose page was not
   * full has seen every matching event up to it, and may read on from there.
   */
  readonly top: bigint;
  /** The id of the event at `top` (null with top 0). */
  readonly topEventId: string | null;
  readonly rows: FeedEvent[];
  /** How far the feed (the project's, with a project) was pruned once the rows were read. */
  readonly prunedThrough: bigint;
  /** The id of the event at the position `checkAt` named, null when none is kept there (not read without checkAt). */
  readonly eventIdAt: string | null;
}

/**
 * readFeed between two reads of the feed's marks, in one round trip (READ COMMITTED reads each
 * statement afresh): the top position before the rows, how far it is pruned after them, so a
 * prune that raced the read shows. `checkAt`: a position whose event's id the reader wants too
 * (a cursor's, to know it names the event it was issued for).
 */
export async function readFeedChecked(
  pool: ConnectionSource,
  filter: FeedFilter,
  limit: number,
  checkAt: bigint | null = null,
): Promise<CheckedRead> {
  const query = feedQuery(filter, limit);
  const project = filter.projectId?.toString();
  const at = checkAt?.toString() ?? "0";
  const [top, mark, eventAt] =
    project === undefined
      ? [
          { sql: "SELECT position AS top, event_id FROM events WHERE position IS NOT NULL ORDER BY position DESC LIMIT 1", params: [] },
          { sql: "SELECT value AS pruned FROM settings WHERE name = ?", params: [PRUNED_THROUGH] },
          { sql: "SELECT event_id FROM events WHERE position = ?", params: [at] },
        ]
      : [
          {
            sql: `SELECT project_position AS top, event_id FROM events
              WHERE project_id = ? AND project_position IS NOT NULL ORDER BY project_position DESC LIMIT 1`,
            params: [project],
          },
          { sql: "SELECT pruned_through AS pruned FROM event_prune_marks WHERE project_id = ?", params: [project] },
          { sql: "SELECT event_id FROM events WHERE project_id = ? AND project_position = ?", params: [project, at] },
        ];
  const statements = [top, query, mark, ...(checkAt === null ? [] : [eventAt])];
  const [results] = await pool.query<RowDataPacket[][]>(
    statements.map((st) => st.sql).join("; "),
    statements.flatMap((st) => st.params),
  );
  const [topRows = [], rows = [], markRows = [], atRows = []] = results;
  const pruned = markRows[0]?.pruned;
  const topRow = topRows[0];
  return {
    top: topRow === undefined ? 0n : bigOf(topRow.top),
    topEventId: topRow === undefined ? null : stringOf(topRow.event_id),
    rows: rows.map(feedEventOf),
    prunedThrough: pruned === undefined ? 0n : bigOf(pruned),
    eventIdAt: atRows[0] === undefined ? null : stringOf(atRows[0].event_id),
  };
}

function feedQuery(filter: FeedFilter, limit: number): { sql: string; params: unknown[] } {
  const byProject = filter.projectId !== null;
  const order = byProject ? "project_position" : "position";
  const where = [`${order} > ?`];
  const params: unknown[] = [filter.after.toString()];
  if (filter.projectId !== null) {
    where.unshift("project_id = ?");
    params.unshift(filter.projectId.toString());
  }
  if (filter.customerId !== null) {
    where.push("customer_id = ?");
    params.push(filter.customerId);
  }
  if (filter.types.length > 0) {
    where.push(`type IN (${filter.types.map(() => "?").join(", ")})`);
    params.push(...filter.types);
  }
  params.push(Math.trunc(limit));
  return {
    sql: `SELECT event_id, position, project_position, project_id, customer_id, type, transaction_id, payload, created_at
       FROM events WHERE ${where.join(" AND ")} ORDER BY ${order} LIMIT ?`,
    params,
  };
}

const eventTypeOf = (value: unknown): EventType => closedValueOf(value, EVENT_TYPES, "events.type");

/** A row read back as untrusted: a malformed payload throws. */
function feedEventOf(row: RowDataPacket): FeedEvent {
  // MariaDB's JSON is text; MySQL's arrives parsed.
  const payload: unknown = typeof row.payload === "string" ? JSON.parse(row.payload) : row.payload;
  return {
    eventId: stringOf(row.event_id),
    position: bigOf(row.position),
    projectPosition: bigOf(row.project_position),
    projectId: bigOf(row.project_id),
    customerId: row.customer_id === null ? null : stringOf(row.customer_id),
    type: eventTypeOf(row.type),
    transactionId: row.transaction_id === null ? null : stringOf(row.transaction_id),
    payload: parsePayload(payload),
    createdAtMs: msOf(row.created_at),
  };
}

/**
 * Deletes the oldest stamped events, at most `batch`, that are older than `olderThanMs` and not
 * after `notAfter` (the publisher's position, when one must send them first), as one prefix of
 * the feed, and records in the same transaction how far the feed, and each project's feed, is
 * pruned (cursor_expired). Returns how many went.
 */
export async function pruneEvents(
  database: Database,
  options: { olderThanMs: number; notAfter: bigint | null; batch: number },
): Promise<number> {
  // Most sweeps find nothing old enough: one row read says so, without a transaction.
  const [first] = await database.pool.query<RowDataPacket[]>(
    "SELECT created_at FROM events WHERE position IS NOT NULL ORDER BY position LIMIT 1",
  );
  if (first[0] === undefined || msOf(first[0].created_at) >= options.olderThanMs) return 0;
  return runTransaction(database, async (tx) => {
    const [oldest] = await tx.run([
      sql`SELECT position, project_id, project_position, created_at FROM events
        WHERE position IS NOT NULL ORDER BY position LIMIT ${Math.trunc(options.batch)}`,
    ]);
    let through: bigint | null = null;
    const projects = new Map<bigint, bigint>();
    for (const row of rowsOf(oldest)) {
      const position = bigOf(row.position);
      if (msOf(row.created_at) >= options.olderThanMs) break;
      if (options.notAfter !== null && position > options.notAfter) break;
      through = position;
      projects.set(bigOf(row.project_id), bigOf(row.project_position));
    }
    if (through === null) return 0;
    const marks = [...projects];
    const markOf = sql.join(
      marks.map(([project, mark]) => sql`WHEN ${project} THEN ${mark}`),
      sql` `,
    );
    await tx.run(
      [
        sql`DELETE FROM events WHERE position IS NOT NULL AND position <= ${through}`,
        sql`INSERT INTO settings (name, value) VALUES (${PRUNED_THROUGH}, ${through.toString()})
            ON DUPLICATE KEY UPDATE value = CAST(GREATEST(CAST(value AS UNSIGNED), ${through}) AS CHAR)`,
        sql`INSERT INTO event_prune_marks (project_id, pruned_through) VALUES ${sql.join(
          marks.map(([project, mark]) => sql`(${project}, ${mark})`),
          sql`, `,
        )} ON DUPLICATE KEY UPDATE pruned_through = GREATEST(pruned_through, CASE project_id ${markOf} END)`,
      ],
      { commit: true },
    );
    return rowsOf(oldest).filter((row) => bigOf(row.position) <= through).length;
  });
}

/** Where a publisher stands: every position up to it is sent (0: nothing yet). */
export async function publisherPosition(pool: ConnectionSource, name: string): Promise<bigint> {
  return (await storedPublisherPosition(pool, name)) ?? 0n;
}

/** A publisher's stored position; null when this database has never had that publisher. */
export async function storedPublisherPosition(pool: ConnectionSource, name: string): Promise<bigint | null> {
  const [rows] = await pool.query<RowDataPacket[]>("SELECT position FROM event_publishers WHERE name = ?", [name]);
  return rows[0] === undefined ? null : bigOf(rows[0].position);
}

/** What a publisher sent last: the position, and the event there by id, and where it sends (both null before they were kept). */
export interface SentMark {
  readonly position: bigint;
  readonly eventId: string | null;
  readonly target: string | null;
}

/**
 * Records that a publisher has sent everything up to `sent.position`, the event `sent.eventId`
 * last, to `sent.target`. Never moves the position back; an older build moves the position alone,
 * so the event is kept with its own position.
 */
export async function savePublisherPosition(pool: ConnectionSource, name: string, sent: SentMark): Promise<void> {
  const position = sent.position.toString();
  // Assignments run left to right: the event is taken while `position` is still the old one.
  await pool.query(
    `INSERT INTO event_publishers (name, position, last_event_id, last_event_position, target, updated_at)
       VALUES (?, ?, ?, ?, ?, NOW(3))
     ON DUPLICATE KEY UPDATE last_event_id = IF(? >= position, ?, last_event_id),
       last_event_position = IF(? >= position, ?, last_event_position), target = ?,
       position = GREATEST(position, ?), updated_at = NOW(3)`,
    [name, position, sent.eventId, position, sent.target, position, sent.eventId, position, position, sent.target, position],
  );
}

/** A publisher's stored mark checked against the feed (publisherMarkChecked). */
export interface CheckedMark {
  readonly sent: SentMark;
  /** Whether the id of the event it sent last was kept for its position (not by an older build). */
  readonly eventKept: boolean;
  /** The id of the event the feed holds at the position, null when none. */
  readonly eventIdThere: string | null;
  readonly top: bigint;
  readonly prunedThrough: bigint;
}

/**
 * Each publisher's stored mark with what the feed holds against it: the event at its position, the
 * feed's top, how far it was pruned. One statement, so one consistent read of the three (a prune
 * committing meanwhile is seen whole or not at all). `verify` reads every publisher through it.
 */
export const PUBLISHER_MARKS_SQL = `SELECT p.name, p.position, p.last_event_id, p.last_event_position, p.target,
    e.event_id AS event_there,
    (SELECT COALESCE(MAX(position), 0) FROM events) AS top,
    COALESCE((SELECT CAST(value AS UNSIGNED) FROM settings WHERE name = '${PRUNED_THROUGH}'), 0) AS pruned
  FROM event_publishers p LEFT JOIN events e ON e.position = p.position`;

/** A row of PUBLISHER_MARKS_SQL, read as untrusted. */
export function checkedMarkOf(row: Readonly<Record<string, unknown>>): CheckedMark {
  const position = bigOf(row.position);
  return {
    sent: {
      position,
      eventId: row.last_event_id === null ? null : stringOf(row.last_event_id),
      target: row.target === null ? null : stringOf(row.target),
    },
    eventKept: row.last_event_position !== null && bigOf(row.last_event_position) === position,
    eventIdThere: row.event_there === null ? null : stringOf(row.event_there),
    top: bigOf(row.top),
    prunedThrough: bigOf(row.pruned),
  };
}

/** A publisher's stored mark checked against the feed, null without a row. */
export async function publisherMarkChecked(pool: ConnectionSource, name: string): Promise<CheckedMark | null> {
  const [rows] = await pool.query<RowDataPacket[]>(`${PUBLISHER_MARKS_SQL} WHERE p.name = ?`, [name]);
  return rows[0] === undefined ? null : checkedMarkOf(rows[0]);
}

/** Records where a publisher sends from now on. */
export async function savePublisherTarget(pool: ConnectionSource, name: string, target: string): Promise<void> {
  await pool.query("UPDATE event_publishers SET target = ?, updated_at = NOW(3) WHERE name = ?", [target, name]);
}

/** Moves a publisher back to `position`, forgetting the event it sent last: it sends every event after it again. */
export async function rewindPublisher(pool: ConnectionSource, name: string, position: bigint, target: string): Promise<void> {
  await pool.query(
    `UPDATE event_publishers SET position = ?, last_event_id = NULL, last_event_position = NULL, target = ?, updated_at = NOW(3)
     WHERE name = ?`,
    [position.toString(), target, name],
  );
}
