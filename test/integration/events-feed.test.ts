import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVENTS_INSERT_HEAD, eventRowSql, payloadText } from "../../src/store/event-rows.js";
import { runTransaction } from "../../src/store/run-transaction.js";
import { decodeFeedCursor } from "../../src/domain/events.js";
import { expectError } from "../support/client.js";
import { commitEvents, openEventTransaction, testEvent, TestWatcher } from "../support/events.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { sql } from "../../src/store/sql.js";

let s: TestServer;
const watchers: TestWatcher[] = [];
const watch = (request: ConstructorParameters<typeof TestWatcher>[2] = {}, key?: string) => {
  const watcher = new TestWatcher(s.app.port, key ?? s.apiKey, request);
  watchers.push(watcher);
  return watcher;
};

beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  for (const w of watchers) w.close();
  await s?.stop();
});

const idsOf = async (eventIds: readonly string[]) => {
  const [rows] = await s.app.database.pool.query<RowDataPacket[]>("SELECT event_id, id, position FROM events WHERE event_id IN (?)", [
    eventIds,
  ]);
  return new Map(rows.map((r) => [String(r.event_id), { id: BigInt(r.id), position: r.position === null ? null : BigInt(r.position) }]));
};

describe("WatchEvents", () => {
  it("delivers an event whose lower id commits after a higher one, in commit order", async () => {
    const customerId = "order-1";
    const watcher = watch({ customerId });
    const early = testEvent(s.app, { customerId, type: "ledger.freeze" });
    const late = testEvent(s.app, { customerId: "order-1-other", type: "ledger.deduct" });
    const held = await openEventTransaction(s.app, [early]);
    await commitEvents(s.app, [late]);
    const other = watch({ customerId: "order-1-other" });
    await other.count(1);
    expect(other.events.map((e) => e.id)).toEqual([late.eventId]);
    await held.commit();
    await watcher.count(1);
    expect(watcher.events.map((e) => e.id)).toEqual([early.eventId]);

    const rows = await idsOf([early.eventId, late.eventId]);
    const e = rows.get(early.eventId);
    const l = rows.get(late.eventId);
    // Ids say insert order, positions say commit order.
    expect((e?.id ?? 0n) < (l?.id ?? 0n)).toBe(true);
    expect((e?.position ?? 0n) > (l?.position ?? 0n)).toBe(true);
    // A watcher that had passed the later-committed event still gets the earlier id.
    await other.until(() => true);
    const all = watch({ cursor: other.events[0]?.cursor ?? "" });
    await all.until((events) => events.some((ev) => ev.id === early.eventId));
    expect(all.events.map((ev) => ev.id)).toContain(early.eventId);
    expect(all.events.map((ev) => ev.id)).not.toContain(late.eventId);
  });

  it("streams what exists and then what commits, each with a cursor to resume after it", async () => {
    const customerId = "resume-1";
    const first = [1, 2, 3].map((n) => testEvent(s.app, { customerId, type: "ledger.deposit", transactionId: `t${n}` }));
    await commitEvents(s.app, first);
    const watcher = watch({ customerId });
    await watcher.count(3);
    const next = [4, 5].map((n) => testEvent(s.app, { customerId, type: "ledger.deduct", transactionId: `t${n}` }));
    await commitEvents(s.app, next);
    await watcher.count(5);
    expect(watcher.events.map((e) => e.transactionId)).toEqual(["t1", "t2", "t3", "t4", "t5"]);
    expect(watcher.events.map((e) => e.type)).toEqual([
      "ledger.deposit",
      "ledger.deposit",
      "ledger.deposit",
      "ledger.deduct",
      "ledger.deduct",
    ]);
    const positions = watcher.events.map((e) => decodeFeedCursor(e.cursor, "project").position);
    expect([...positions].sort((a, b) => (a < b ? -1 : 1))).toEqual(positions);

    const resumed = watch({ customerId, cursor: watcher.events[2]?.cursor ?? "" });
    await resumed.count(2);
    expect(resumed.events.map((e) => e.transactionId)).toEqual(["t4", "t5"]);
    const typed = watch({ customerId, types: ["ledger.deduct"] });
    await typed.count(2);
    expect(typed.events.map((e) => e.transactionId)).toEqual(["t4", "t5"]);
  });

  it("carries the payload's entries and balance, exactly", async () => {
    const customerId = "payload-1";
    const balance = { total: 100n, used: 30n, frozen: 20n, available: 50n };
    const event = testEvent(s.app, {
      customerId,
      type: "ledger.freeze",
      transactionId: "job-1",
      payload: {
        entries: [{ sequence: 4n, operation: "FREEZE", amount: 20n, accountId: 3n, creditType: "default", balanceAfter: balance }],
        balanceAfter: balance,
      },
    });
    await commitEvents(s.app, [event]);
    const watcher = watch({ customerId });
    await watcher.count(1);
    const got = watcher.events[0];
    expect(got).toMatchObject({
      id: event.eventId,
      type: "ledger.freeze",
      customerId,
      transactionId: "job-1",
      entries: [{ sequence: 4n, operation: "FREEZE", amount: 20n, accountId: "3", creditType: "default", balanceAfter: balance }],
      balanceAfter: balance,
      data: {},
    });
    expect(event.eventId.startsWith(`${s.app.context.events?.deploymentId}-`)).toBe(true);
  });

  it("stores a payload whose text the write edits in SQL (ids only the INSERT knows)", async () => {
    const customerId = "payload-sql";
    const balance = { total: 5n, used: 0n, frozen: 0n, available: 5n };
    const event = testEvent(s.app, {
      customerId,
      type: "ledger.deposit",
      payload: {
        entries: [
          { sequence: 1n, operation: "DEPOSIT", amount: 5n, accountId: 999_999_999n, creditType: "default", balanceAfter: balance },
        ],
        balanceAfter: balance,
      },
    });
    // As a deposit into a new account would: a placeholder replaced by the id the database made.
    const payload = sql`REPLACE(${payloadText(event)}, '"999999999"', CONCAT('"', CAST(4242 AS CHAR), '"'))`;
    await runTransaction(s.app.database, (tx) =>
      tx.run([sql`${EVENTS_INSERT_HEAD} VALUES ${eventRowSql(event, payload)}`], { commit: true }),
    );
    s.app.context.events?.notifyCommitted();
    const watcher = watch({ customerId });
    await watcher.count(1);
    expect(watcher.events[0]?.entries.map((e) => e.accountId)).toEqual(["4242"]);
  });

  it("a read key watches; another project's key sees none of these events", async () => {
    const customerId = "tenancy-1";
    const read = await s.createKey({ scope: "read" });
    const project = await s.createProject();
    const otherKey = await s.createKey({ project });
    const mine = watch({ customerId }, read.key);
    const theirs = watch({}, otherKey.key);
    await commitEvents(s.app, [testEvent(s.app, { customerId, type: "ledger.deposit" })]);
    const theirEvent = testEvent(s.app, { customerId, type: "ledger.deposit", projectId: project.id });
    await commitEvents(s.app, [theirEvent]);
    await mine.count(1);
    await theirs.count(1);
    expect(theirs.events.map((e) => e.id)).toEqual([theirEvent.eventId]);
    expect(mine.events.map((e) => e.id)).not.toContain(theirEvent.eventId);
    // Cursors count the project's own events only: theirs interleaved with ours leave no gap.
    await commitEvents(s.app, [testEvent(s.app, { customerId, type: "ledger.deduct", projectId: project.id })]);
    await commitEvents(s.app, [testEvent(s.app, { customerId, type: "ledger.deduct" })]);
    await commitEvents(s.app, [testEvent(s.app, { customerId, type: "ledger.deduct", projectId: project.id })]);
    await theirs.count(3);
    expect(theirs.events.map((e) => decodeFeedCursor(e.cursor, "project").position)).toEqual([1n, 2n, 3n]);
  });

  it("refuses a missing key, a malformed cursor, one ahead of the feed and an unknown type", async () => {
    const noKey = new TestWatcher(s.app.port, "vb_test_nope", {});
    watchers.push(noKey);
    await expectError(
      noKey.ended.then((e) => Promise.reject(e)),
      "invalid_api_key",
    );
    await expectError(
      watch({ cursor: "garbage" }).ended.then((e) => Promise.reject(e)),
      "invalid_page_token",
      "cursor is not an event cursor.",
    );
    await expectError(
      watch({ cursor: "ev1.zzzzz" }).ended.then((e) => Promise.reject(e)),
      "invalid_page_token",
      "cursor is ahead of the feed: it was not issued for these events (another project's, or one from before the database was restored from an earlier backup).",
    );
    await expectError(
      watch({ types: ["ledger.nope"] }).ended.then((e) => Promise.reject(e)),
      "invalid_argument",
      "types holds an unknown value.",
    );
  });
});
