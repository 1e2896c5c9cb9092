import { describe, expect, it } from "vitest";
import { LedgerCounts } from "../../src/operations/ledger-counts.js";

describe("LedgerCounts", () => {
  it("keeps the count up to the newest position, and forgets the oldest past its size", () => {
    const counts = new LedgerCounts(2);
    counts.remember("a", { through: 10n, count: 3 });
    counts.remember("a", { through: 8n, count: 2 });
    expect(counts.known("a")).toEqual({ through: 10n, count: 3 });
    counts.remember("a", { through: 12n, count: 4 });
    counts.remember("b", { through: 1n, count: 1 });
    counts.remember("c", { through: 1n, count: 0 });
    expect([counts.known("a"), counts.known("b"), counts.known("c")]).toEqual([
      undefined,
      { through: 1n, count: 1 },
      { through: 1n, count: 0 },
    ]);
  });
});
