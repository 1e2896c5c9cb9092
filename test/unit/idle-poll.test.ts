import { describe, expect, it } from "vitest";
import { EVENT_POLL_QUIET_AFTER_MS } from "../../src/domain/limits.js";
import { IdlePoll } from "../../src/operations/events/idle-poll.js";

describe("IdlePoll: the feed loops' wait between polls", () => {
  it("keeps the base interval for a quiet second, then doubles up to the idle interval, and a find brings it back", () => {
    let nowMs = 0;
    const poll = new IdlePoll(20, 250, () => nowMs);
    const waitAfter = (found: boolean, elapsedMs: number) => {
      nowMs += elapsedMs;
      poll.record(found);
      return poll.waitMs;
    };
    expect(poll.waitMs).toBe(20);
    expect(waitAfter(false, EVENT_POLL_QUIET_AFTER_MS - 1)).toBe(20);
    expect([waitAfter(false, 1), waitAfter(false, 40), waitAfter(false, 80), waitAfter(false, 160), waitAfter(false, 250)]).toEqual([
      40, 80, 160, 250, 250,
    ]);
    expect(poll.slowed).toBe(true);
    expect(waitAfter(true, 250)).toBe(20);
    expect(poll.slowed).toBe(false);
    expect(waitAfter(false, EVENT_POLL_QUIET_AFTER_MS - 1)).toBe(20);
    expect(waitAfter(false, 1)).toBe(40);
  });

  it("hurries back to the base interval on news, waking the loop only when it had slowed", () => {
    let nowMs = 0;
    const poll = new IdlePoll(20, 250, () => nowMs);
    let woken = 0;
    poll.hurry(() => woken++);
    expect([poll.waitMs, woken]).toEqual([20, 0]);
    nowMs += EVENT_POLL_QUIET_AFTER_MS;
    poll.record(false);
    poll.hurry(() => woken++);
    expect([poll.waitMs, woken]).toEqual([20, 1]);
  });

  it("never waits less than the base interval, whatever the idle one says", () => {
    let nowMs = 0;
    const poll = new IdlePoll(100, 10, () => nowMs);
    nowMs += EVENT_POLL_QUIET_AFTER_MS;
    poll.record(false);
    expect(poll.waitMs).toBe(100);
  });
});
