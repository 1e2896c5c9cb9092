import { describe, expect, it } from "vitest";
import { OVERLOAD_RETRY_DELAY_MS } from "../../src/domain/limits.js";
import { overloaded } from "../../src/operations/overload.js";

describe("overloaded", () => {
  it("refuses with rate_limit_exceeded and a wait drawn across OVERLOAD_RETRY_DELAY_MS, ends included, and tells its observer the line", () => {
    const lines: string[] = [];
    const at = (random: number) =>
      overloaded(
        "gate",
        "full",
        { writes_waiting_max: 3 },
        (line) => lines.push(line),
        () => random,
      );
    const lowest = at(0);
    const highest = at(0.999_999);
    expect([lowest.code, lowest.message, lowest.retryDelayMs, lowest.facts]).toEqual([
      "rate_limit_exceeded",
      "full",
      OVERLOAD_RETRY_DELAY_MS.min,
      { writes_waiting_max: 3, retry_delay_ms: OVERLOAD_RETRY_DELAY_MS.min },
    ]);
    expect(highest.retryDelayMs).toBe(OVERLOAD_RETRY_DELAY_MS.max);
    expect(at(0.5).retryDelayMs).toBe(1000);
    expect(lines).toEqual(["gate", "gate", "gate"]);
  });
});
