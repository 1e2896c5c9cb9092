import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uid } from "../support/fixtures.js";
import { HttpTestClient, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";

// EVENTS_OUTBOX=off exists for the bench's comparison only: writes then append no events, so an
// instance started with it says so once, loudly, rather than leave the feed silently empty.

const lines: string[] = [];
let s: TestServer;

beforeAll(async () => {
  s = await startTestServer({ EVENTS_OUTBOX: "off" }, { logDestination: { write: (line: string) => void lines.push(line) } });
});

afterAll(async () => {
  await s?.stop();
});

describe("EVENTS_OUTBOX=off", () => {
  it("warns once at start, and its writes append no events", async () => {
    const warnings = lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((line) => line.level === 40);
    expect(warnings.filter((line) => line.msg.startsWith("EVENTS_OUTBOX=off")).map((line) => line.msg)).toEqual([
      "EVENTS_OUTBOX=off: writes append no events, so the feed, NATS and balance alerts miss them (a switch for the bench only)",
    ]);
    const customerId = uid("quiet");
    const deposited = await s.client.call("deposit", { customerId, amount: 10n });
    expect(deposited.balance?.available).toBe(10n);
    const http = new HttpTestClient(s.httpUrl, s.apiKey);
    expect(ok(await http.get(`/v1/events?customer_id=${customerId}`))).toEqual({ items: [], next_cursor: null, has_more: false });
  });
});
