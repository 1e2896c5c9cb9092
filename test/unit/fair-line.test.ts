import { describe, expect, it } from "vitest";
import { FairLine } from "../../src/operations/fair-line.js";

describe("FairLine", () => {
  it("takes one item per tenant per round, each tenant's in order, resuming after the last tenant taken from", () => {
    const line = new FairLine<string>(10);
    for (const item of ["a1", "a2", "a3", "a4"]) line.push("a", item, undefined, () => {});
    line.push("b", "b1", undefined, () => {});
    line.push("c", "c1", undefined, () => {});
    line.push("c", "c2", undefined, () => {});
    expect(line.take(4)).toEqual(["a1", "b1", "c1", "a2"]);
    line.push("b", "b2", undefined, () => {});
    expect([line.length, line.countOf("a"), line.countOf("b")]).toEqual([4, 2, 1]);
    expect(line.take(10)).toEqual(["c2", "a3", "b2", "a4"]);
    expect(line.length).toBe(0);
  });

  it("gives a place back when its caller leaves, and not twice", () => {
    const line = new FairLine<string>(10);
    const gone = new AbortController();
    const left: string[] = [];
    line.push("a", "a1", gone.signal, () => left.push("a1"));
    const stop = line.push("a", "a2", gone.signal, () => left.push("a2"));
    stop();
    gone.abort();
    expect([left, line.length, line.take(5)]).toEqual([["a1"], 1, ["a2"]]);
    // A caller that left before it came takes no place at all.
    line.push("b", "b1", gone.signal, () => left.push("b1"));
    expect([left, line.length, line.countOf("b")]).toEqual([["a1", "b1"], 0, 0]);
  });
});
