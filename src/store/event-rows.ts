import { randomBytes } from "node:crypto";
import { type SQL, sql } from "./sql.js";
import { type NewEvent, payloadJson } from "../domain/events.js";
import { events } from "./schema.js";
import { rowChunksOf } from "./statement-chunks.js";

/**
 * The outbox rows of a write, built to merge: the pipeline puts one write's event rows, and its
 * neighbours', behind one EVENTS_INSERT_HEAD (write-set.ts's rowsPart pattern), inside the
 * write's own transaction. `position` stays NULL: the stamper sets it after COMMIT.
 */
export const EVENTS_INSERT_HEAD: SQL = sql`INSERT INTO ${events} (event_id, project_id, customer_id, type, transaction_id, payload, created_at)`;

/** The payload's JSON text, as `eventRowSql` stores it (for a caller that must edit it in SQL). */
export const payloadText = (event: NewEvent): string => JSON.stringify(payloadJson(event.payload));

/**
 * One VALUES row of EVENTS_INSERT_HEAD. `payload`, when given, replaces the payload's text: an
 * SQL expression for a payload holding ids only the database knows yet (a deposit's new account:
 * `REPLACE(<payloadText>, <placeholder>, LAST_INSERT_ID())`, as the deposit's stored outcome does).
 */
export function eventRowSql(event: NewEvent, payload?: SQL): SQL {
  const text = payload ?? sql`${payloadText(event)}`;
  return sql`(${event.eventId}, ${event.projectId}, ${event.customerId}, ${event.type}, ${event.transactionId}, ${text}, ${new Date(event.nowMs)})`;
}

/**
 * The INSERT of one event whose `data` holds values the database gives in this transaction (a
 * claim's new holding id): each field's placeholder in the payload text is replaced in SQL by its
 * value, as the deposit's new account is (list-events.ts).
 */
export function appendEventWithDataSql(event: NewEvent, fromDatabase: Readonly<Record<string, SQL>>): SQL[] {
  let payload = sql`${payloadText(event)}`;
  for (const [field, value] of Object.entries(fromDatabase)) {
    const placeholder = `${JSON.stringify(field)}:${JSON.stringify(event.payload.data[field] ?? "")}`;
    payload = sql`REPLACE(${payload}, ${placeholder}, CONCAT(${`${JSON.stringify(field)}:"`}, ${value}, '"'))`;
  }
  return [sql`${EVENTS_INSERT_HEAD} VALUES ${eventRowSql(event, payload)}`];
}

/** The INSERT statements of these events, ROWS_PER_STATEMENT rows each (none for none). */
export function appendEventsSql(list: readonly NewEvent[]): SQL[] {
  return rowChunksOf(list.map((event) => eventRowSql(event))).map((rows) => sql`${EVENTS_INSERT_HEAD} VALUES ${sql.join(rows, sql`, `)}`);
}

/**
 * This process's tag: 12 random bytes (16 base64url characters), drawn once per start, so two
 * processes (or two starts of one) never share one; the counter then numbers its events.
 */
const PROCESS_TAG = randomBytes(12).toString("base64url");
let eventsMade = 0;

/**
 * `<deployment id>-<process tag><counter>`: unique beyond one database (two deployments never
 * collide on a NATS stream) and within it (one tag per process start, one count per event). The
 * counter is fixed-width base 36, so one process's ids grow in order: the unique index on
 * `event_id` takes them at its right edge instead of at random pages, and no event pays for a
 * call to the random source.
 */
export const newEventId = (deploymentId: string): string => {
  eventsMade += 1;
  return `${deploymentId}-${PROCESS_TAG}${eventsMade.toString(36).padStart(11, "0")}`;
};
