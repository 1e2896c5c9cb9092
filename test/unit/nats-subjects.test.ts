import { describe, expect, it } from "vitest";
import { capturesEvents } from "../../src/operations/events/nats-publisher.js";

describe("capturesEvents: whether a stream's subject filter takes every <prefix>.<project>.<kind>.<what>", () => {
  it.each([
    [">", "velobase", true],
    ["velobase.>", "velobase", true],
    ["velobase.*.>", "velobase", true],
    ["velobase.*.*.*", "velobase", true],
    ["*.*.*.*", "velobase", true],
    ["a.>", "a.b", true],
    ["a.b.>", "a.b", true],
    ["velobase", "velobase", false],
    ["velobase.*", "velobase", false],
    ["velobase.*.*", "velobase", false],
    ["velobase.*.ledger.*", "velobase", false],
    ["velobase.1.>", "velobase", false],
    ["other.>", "velobase", false],
    ["velobase.*.*.*.*", "velobase", false],
    ["a.c.>", "a.b", false],
  ])("%s with prefix %s: %s", (filter, prefix, expected) => {
    expect(capturesEvents(filter, prefix)).toBe(expected);
  });
});
