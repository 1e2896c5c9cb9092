import { describe, expect, it } from "vitest";
import { stampOrder } from "../../src/domain/event-order.js";
import { decodeFeedCursor, encodeFeedCursor, eventTagOf, parsePayload, payloadJson } from "../../src/domain/events.js";
import { codeOf } from "../support/code-of.js";

describe("stampOrder", () => {
  it("is id order when ids agree with each customer's sequences", () => {
    expect(
      stampOrder([
        { id: 3n, customerKey: "1:a", sequence: 2n },
        { id: 1n, customerKey: "1:a", sequence: 1n },
        { id: 2n, customerKey: "1:b", sequence: 1n },
      ]),
    ).toEqual([1n, 2n, 3n]);
  });

  it("puts a customer's events in sequence order in the slots they hold (ids interleaved across Galera nodes)", () => {
    expect(
      stampOrder([
        { id: 1n, customerKey: "1:a", sequence: 8n },
        { id: 2n, customerKey: "1:b", sequence: 1n },
        { id: 4n, customerKey: "1:a", sequence: 7n },
        { id: 5n, customerKey: null, sequence: null },
        { id: 7n, customerKey: "1:a", sequence: null },
      ]),
    ).toEqual([4n, 2n, 1n, 5n, 7n]);
  });

  it("keeps the same customer id of two projects apart", () => {
    expect(
      stampOrder([
        { id: 1n, customerKey: "1:a", sequence: 2n },
        { id: 2n, customerKey: "2:a", sequence: 1n },
      ]),
    ).toEqual([1n, 2n]);
  });
});

describe("feed cursors", () => {
  it.each([0n, 1n, 35n, 36n, 10n ** 12n, 2n ** 63n])("round-trips position %s with its event's tag", (position) => {
    expect(decodeFeedCursor(encodeFeedCursor(position, "project", "dep1-abc-7"), "project")).toEqual({
      position,
      eventTag: eventTagOf("dep1-abc-7"),
    });
  });

  it("tags a cursor by its event: 8 hex digits, another event another tag; a position alone has none", () => {
    expect(encodeFeedCursor(71n, "project", "dep1-abc-7")).toMatch(/^ev1\.1z\.[0-9a-f]{8}$/);
    expect(eventTagOf("dep1-abc-7")).not.toBe(eventTagOf("dep1-abc-8"));
    expect(encodeFeedCursor(71n, "project", null)).toBe("ev1.1z");
    // A cursor from before tags is still read, with nothing to check.
    expect(decodeFeedCursor("ev1.1z", "project")).toEqual({ position: 71n, eventTag: null });
  });

  it.each([1n, 10n ** 12n])("round-trips position %s of the feed of every project, under its own prefix", (position) => {
    const cursor = encodeFeedCursor(position, "global", "dep1-abc-7");
    expect(cursor.startsWith("evall1.")).toBe(true);
    expect(decodeFeedCursor(cursor, "global").position).toBe(position);
  });

  it("refuses a cursor of the other feed, saying which it is", () => {
    expect(codeOf(() => decodeFeedCursor(encodeFeedCursor(3n, "global", "e"), "project"))).toBe("invalid_page_token");
    expect(codeOf(() => decodeFeedCursor(encodeFeedCursor(3n, "project", "e"), "global"))).toBe("invalid_page_token");
  });

  it("reads empty as the start and refuses anything else", () => {
    expect(decodeFeedCursor("", "project")).toEqual({ position: 0n, eventTag: null });
    for (const bad of [
      "ev1.",
      "ev1.-1",
      "ev1.ZZ",
      "42",
      "ev2.1",
      "ev1.zzzzzzzzzzzzzz",
      "ev1.1.",
      "ev1.1.abc",
      "ev1.1.ABCDEF12",
      "ev1.1.0123456789",
    ]) {
      expect(codeOf(() => decodeFeedCursor(bad, "project"))).toBe("invalid_page_token");
    }
  });
});

describe("event payloads", () => {
  it("round-trip through their stored JSON exactly, beyond 2^53", () => {
    const balance = { total: 2n ** 60n, used: 1n, frozen: 2n, available: 2n ** 60n - 3n };
    const payload = {
      entries: [{ sequence: 9n, operation: "DEDUCT", amount: 2n ** 55n, accountId: 4n, creditType: "paid", balanceAfter: balance }],
      balanceAfter: balance,
      data: { note: "x" },
    };
    expect(parsePayload(JSON.parse(JSON.stringify(payloadJson(payload))))).toEqual(payload);
  });

  it("refuses a malformed stored payload", () => {
    expect(() => parsePayload({ entries: [{ sequence: 1 }] })).toThrow(/sequence/);
    expect(() => parsePayload("x")).toThrow(/payload/);
  });
});
