import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pruneExpiredEvents } from "../../src/operations/events/retention.js";
import { lastPosition, savePublisherPosition } from "../../src/store/event-feed-store.js";
import { NATS_PUBLISHER } from "../../src/operations/events/nats-publisher.js";
import { expectError } from "../support/client.js";
import { commitEvents, testEvent, TestWatcher } from "../support/events.js";
import { expectHttpError, HttpTestClient, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";

let s: TestServer;
let http: HttpTestClient;
const HOUR = 3_600_000;

beforeAll(async () => {
  s = await startTestServer();
  http = new HttpTestClient(s.httpUrl, s.apiKey);
});
afterAll(async () => {
  await s?.stop();
});

interface Page {
  items: {
    id: string;
    cursor: string;
    type: string;
    customer_id: string | null;
    transaction_id: string | null;
    entries: unknown[];
    balance_after: unknown;
    created_at: string;
  }[];
  next_cursor: string | null;
  has_more: boolean;
}

/** Pages GET /v1/events until the given event ids are all seen (they are stamped asynchronously). */
async function pageUntil(query: string, ids: readonly string[]): Promise<Page["items"]> {
  for (;;) {
    const page = ok<Page>(await http.get(`/v1/events?${query}&limit=100`));
    if (ids.every((id) => page.items.some((item) => item.id === id))) return page.items;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("GET /v1/events", () => {
  it("pages a project's events in commit order with next_cursor and has_more", async () => {
    const customerId = "http-1";
    const balance = { total: 10n, used: 0n, frozen: 0n, available: 10n };
    const events = [1, 2, 3].map((n) =>
      testEvent(s.app, {
        customerId,
        type: "ledger.deposit",
        transactionId: n === 1 ? null : `t${n}`,
        payload: {
          entries: [
            {
              sequence: BigInt(n),
              operation: "DEPOSIT",
              amount: 10n,
              accountId: 1n,
              creditType: "default",
              balanceAfter: balance,
            },
          ],
          balanceAfter: balance,
        },
      }),
    );
    await commitEvents(s.app, events);
    const all = await pageUntil(
      `customer_id=${customerId}`,
      events.map((e) => e.eventId),
    );
    expect(all.map((i) => i.id)).toEqual(events.map((e) => e.eventId));
    expect(all[0]).toEqual({
      id: events[0]?.eventId,
      cursor: all[0]?.cursor,
      type: "ledger.deposit",
      customer_id: customerId,
      transaction_id: null,
      entries: [
        {
          sequence: 1,
          operation: "DEPOSIT",
          amount: 10,
          account_id: "1",
          credit_type: "default",
          balance_after: { total: 10, used: 0, frozen: 0, available: 10 },
        },
      ],
      balance_after: { total: 10, used: 0, frozen: 0, available: 10 },
      data: {},
      created_at: new Date(s.clock.now()).toISOString(),
    });

    const first = ok<Page>(await http.get(`/v1/events?customer_id=${customerId}&limit=2`));
    expect(first.items.map((i) => i.id)).toEqual(events.slice(0, 2).map((e) => e.eventId));
    expect(first.has_more).toBe(true);
    expect(first.next_cursor).toBe(first.items[1]?.cursor);
    const second = ok<Page>(await http.get(`/v1/events?customer_id=${customerId}&limit=2&cursor=${first.next_cursor}`));
    expect(second.items.map((i) => i.id)).toEqual([events[2]?.eventId]);
    expect(second.has_more).toBe(false);
    const empty = ok<Page>(await http.get(`/v1/events?customer_id=${customerId}&cursor=${second.next_cursor}`));
    expect(empty).toEqual({ items: [], next_cursor: second.next_cursor, has_more: false });
  });

  it("filters by types; a read key may list; another project's key sees none of them", async () => {
    const customerId = "http-2";
    const deduct = testEvent(s.app, { customerId, type: "ledger.deduct" });
    await commitEvents(s.app, [testEvent(s.app, { customerId, type: "ledger.deposit" }), deduct]);
    await pageUntil(`customer_id=${customerId}`, [deduct.eventId]);
    const read = await s.createKey({ scope: "read" });
    const typed = ok<Page>(await http.get(`/v1/events?customer_id=${customerId}&types=ledger.deduct,balance.low`, { key: read.key }));
    expect(typed.items.map((i) => i.id)).toEqual([deduct.eventId]);
    const other = await s.createKey({ project: await s.createProject() });
    expect(ok<Page>(await http.get("/v1/events?limit=100", { key: other.key }))).toEqual({ items: [], next_cursor: null, has_more: false });
  });

  it("refuses a bad cursor, an unknown type and a bad limit", async () => {
    expectHttpError(await http.get("/v1/events?cursor=nope"), "invalid_page_token", {
      message: "cursor is not an event cursor.",
      details: { field: "cursor" },
    });
    // Ahead of the project's feed (another feed's, or made up): refused, not read as "nothing yet",
    // which would skip every event up to it once they come.
    expectHttpError(await http.get("/v1/events?cursor=ev1.zzzz"), "invalid_page_token", {
      message:
        "cursor is ahead of the feed: it was not issued for these events (another project's, or one from before the database was restored from an earlier backup).",
      details: { field: "cursor" },
    });
    // At the boundary: the feed's top is a cursor it issued (nothing after it yet), one past it is not.
    const newest = testEvent(s.app, { customerId: "feed-top", type: "ledger.deposit" });
    await commitEvents(s.app, [newest]);
    await pageUntil("customer_id=feed-top", [newest.eventId]); // numbered: the feed's top from now on
    let page = ok<Page>(await http.get("/v1/events?limit=100"));
    while (page.has_more) page = ok<Page>(await http.get(`/v1/events?limit=100&cursor=${page.next_cursor}`));
    const top = page.next_cursor ?? "";
    const { decodeFeedCursor, encodeFeedCursor } = await import("../../src/domain/events.js");
    const pastTop = encodeFeedCursor(decodeFeedCursor(top, "project").position + 1n, "project", null);
    expect(ok<Page>(await http.get(`/v1/events?cursor=${top}`))).toMatchObject({ items: [], next_cursor: top, has_more: false });
    expectHttpError(await http.get(`/v1/events?cursor=${pastTop}`), "invalid_page_token", {
      message:
        "cursor is ahead of the feed: it was not issued for these events (another project's, or one from before the database was restored from an earlier backup).",
      details: { field: "cursor" },
    });
    expectHttpError(await http.get("/v1/events?cursor=evall1.1"), "invalid_page_token", {
      message: "cursor is from the feed of every project (events tail without --project), not from one project's.",
      details: { field: "cursor" },
    });
    expectHttpError(await http.get("/v1/events?types=ledger.x"), "invalid_argument", {
      message: "types holds an unknown value.",
      details: { field: "types", value: "ledger.x" },
    });
    expectHttpError(await http.get("/v1/events?limit=101"), "invalid_limit", { details: { field: "limit" } });
  });
});

describe("retention", () => {
  it("prunes old events as a prefix, never one the publisher has not sent; a pruned cursor is cursor_expired", async () => {
    const customerId = "retention-1";
    const old = [1, 2, 3].map(() => testEvent(s.app, { customerId, type: "ledger.deduct" }));
    await commitEvents(s.app, old);
    const kept = await pageUntil(
      `customer_id=${customerId}`,
      old.map((e) => e.eventId),
    );
    const startCursor = ok<Page>(await http.get("/v1/events?limit=1")).items[0]?.cursor ?? "";
    s.clock.advance(2 * HOUR);
    const fresh = testEvent(s.app, { customerId, type: "ledger.deposit" });
    await commitEvents(s.app, [fresh]);
    await pageUntil(`customer_id=${customerId}`, [fresh.eventId]);

    // With a publisher that has sent nothing yet, nothing goes.
    const retention = { retentionMs: HOUR, awaitPublisher: true };
    expect(await pruneExpiredEvents(s.app.context, retention)).toBe(0);
    // Once it has sent the first of them, that one (and everything before it) may go.
    const cursorOf = (i: number) => kept[i]?.cursor ?? "";
    // The publisher's position is in the feed of every project, not the project's cursor's.
    const [sent] = await s.app.database.pool.query<RowDataPacket[]>("SELECT position FROM events WHERE event_id = ?", [kept[0]?.id]);
    await savePublisherPosition(s.app.database.pool, NATS_PUBLISHER, {
      position: BigInt(sent[0]?.position ?? 0),
      eventId: null,
      target: null,
    });
    const pruned = await pruneExpiredEvents(s.app.context, retention);
    expect(pruned).toBeGreaterThan(0);
    const left = ok<Page>(await http.get(`/v1/events?customer_id=${customerId}`));
    expect(left.items.map((i) => i.id)).toEqual([old[1]?.eventId, old[2]?.eventId, fresh.eventId]);
    // An instance without NATS_URL is held to the publisher's position all the same.
    expect(await pruneExpiredEvents(s.app.context, { retentionMs: HOUR, awaitPublisher: false })).toBe(0);
    // With the publisher retired (its row deleted), every old event goes; the fresh one stays.
    await s.app.database.pool.query("DELETE FROM event_publishers WHERE name = ?", [NATS_PUBLISHER]);
    await pruneExpiredEvents(s.app.context, { retentionMs: HOUR, awaitPublisher: false });
    const after = ok<Page>(await http.get(`/v1/events?customer_id=${customerId}`));
    expect(after.items.map((i) => i.id)).toEqual([fresh.eventId]);

    expectHttpError(await http.get(`/v1/events?cursor=${startCursor}`), "cursor_expired", { details: { field: "cursor" } });
    const watcher = new TestWatcher(s.app.port, s.apiKey, { cursor: startCursor });
    await expectError(
      watcher.ended.then((e) => Promise.reject(e)),
      "cursor_expired",
    );
    watcher.close();
    // The last pruned event's cursor is still good: nothing after it is gone.
    const last = ok<Page>(await http.get(`/v1/events?customer_id=${customerId}&cursor=${cursorOf(2)}`));
    expect(last.items.map((i) => i.id)).toEqual([fresh.eventId]);
  });

  it("goes on numbering after every event has been pruned: a reader's cursor and the publisher's position stay behind the next events", async () => {
    const customerId = "retention-2";
    const before = [testEvent(s.app, { customerId, type: "ledger.deduct" })];
    await commitEvents(s.app, before);
    const seen = await pageUntil(`customer_id=${customerId}`, [before[0]?.eventId ?? ""]);
    const cursor = seen.at(-1)?.cursor ?? "";
    const topBefore = await lastPosition(s.app.database.pool);
    s.clock.advance(2 * HOUR);
    await pruneExpiredEvents(s.app.context, { retentionMs: HOUR, awaitPublisher: false });
    expect(ok<Page>(await http.get("/v1/events")).items).toEqual([]);
    expect(await lastPosition(s.app.database.pool)).toBe(topBefore);

    const after = testEvent(s.app, { customerId, type: "ledger.deposit" });
    await commitEvents(s.app, [after]);
    const next = await pageUntil(`cursor=${cursor}`, [after.eventId]);
    expect(next.map((i) => i.id)).toEqual([after.eventId]);
    expect(await lastPosition(s.app.database.pool)).toBe(topBefore + 1n);
  });
});

describe("a feed numbered again: the database restored from an earlier backup", () => {
  it("with EVENTS_CURSOR_TAGS=off issues cursors without the tag, as builds before tags read them (a rollout)", async () => {
    await commitEvents(s.app, [testEvent(s.app, { customerId: "untagged" })]);
    const other = await s.startAnotherInstance({ EVENTS_CURSOR_TAGS: "off" });
    const untaggedCursor = /^ev1\.[0-9a-z]+$/;
    try {
      const page = ok<Page>(await new HttpTestClient(other.httpUrl, s.apiKey).get("/v1/events?limit=3"));
      expect(page.items.length).toBeGreaterThan(0);
      expect([...page.items.map((i) => i.cursor), page.next_cursor].filter((c) => !untaggedCursor.test(c ?? ""))).toEqual([]);
      const watcher = new TestWatcher(other.port, s.apiKey, {});
      await watcher.count(1);
      watcher.close();
      expect(watcher.events[0]?.cursor).toMatch(untaggedCursor);
    } finally {
      await other.stop();
    }
  });

  it("refuses a cursor issued before the restore as cursor_expired (API and WatchEvents); a cursor of a kept event reads on", async () => {
    // A project of its own, so that its feed is numbered from 1 here.
    const project = await s.createProject();
    const key = (await s.createKey({ project })).key;
    const api = new HttpTestClient(s.httpUrl, key);
    const page = async (query: string, ids: readonly string[]) => {
      for (;;) {
        const items = ok<Page>(await api.get(`/v1/events?${query}`)).items;
        if (ids.every((id) => items.some((item) => item.id === id))) return items;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    const backedUp = testEvent(s.app, { projectId: project.id, customerId: "restored" });
    const lost = [1, 2].map(() => testEvent(s.app, { projectId: project.id, customerId: "restored" }));
    await commitEvents(s.app, [backedUp]);
    await commitEvents(s.app, lost);
    const seen = await page("", [backedUp.eventId, ...lost.map((e) => e.eventId)]);
    const [kept = "", , saved = ""] = seen.map((item) => item.cursor);
    expect(seen.map((item) => item.cursor.split(".").slice(0, 2).join("."))).toEqual(["ev1.1", "ev1.2", "ev1.3"]);

    // The restore brings back the feed as it was at the backup: the two later events are gone, and
    // the next two are numbered 2 and 3 again.
    await s.app.database.pool.query(
      "DELETE FROM events WHERE event_id IN (?, ?)",
      lost.map((e) => e.eventId),
    );
    const renumbered = [1, 2].map(() => testEvent(s.app, { projectId: project.id, customerId: "restored" }));
    await commitEvents(s.app, renumbered);
    const now = await page(
      "",
      renumbered.map((e) => e.eventId),
    );
    expect(now.map((item) => [item.id, item.cursor.split(".").slice(0, 2).join(".")])).toEqual([
      [backedUp.eventId, "ev1.1"],
      [renumbered[0]?.eventId, "ev1.2"],
      [renumbered[1]?.eventId, "ev1.3"],
    ]);

    const message =
      "The event this cursor was issued after is not in this feed: the cursor is another project's, or the database was restored from an earlier backup (then read again from the oldest event, with an empty cursor).";
    expectHttpError(await api.get(`/v1/events?cursor=${saved}`), "cursor_expired", { message, details: { field: "cursor" } });
    const watcher = new TestWatcher(s.app.port, key, { cursor: saved });
    await expectError(
      watcher.ended.then((e) => Promise.reject(e)),
      "cursor_expired",
      message,
    );
    watcher.close();
    // The cursor of the event the backup kept still reads on, into the renumbered events.
    const onward = ok<Page>(await api.get(`/v1/events?cursor=${kept}`));
    expect(onward.items.map((item) => item.id)).toEqual(renumbered.map((e) => e.eventId));
    expect(onward.next_cursor).toBe(onward.items[1]?.cursor);
  });
});
