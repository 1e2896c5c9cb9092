import { describe, expect, it } from "vitest";
import { appendTo } from "../../src/domain/collections.js";

describe("appendTo", () => {
  it("groups values by key in arrival order, in place: the list a key already has grows, it is not copied", () => {
    const groups = new Map<string, number[]>();
    appendTo(groups, "a", 1);
    const first = groups.get("a");
    appendTo(groups, "b", 2);
    appendTo(groups, "a", 3);
    expect([...groups]).toEqual([
      ["a", [1, 3]],
      ["b", [2]],
    ]);
    expect(groups.get("a")).toBe(first);
  });
});
