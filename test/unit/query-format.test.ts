import mysql from "mysql2/promise";
import { describe, expect, it } from "vitest";
import { queryFormat } from "../../src/store/query-format.js";

describe("queryFormat", () => {
  it("sends a text without values as it is, whatever it holds", () => {
    const text = "SELECT 'a?b' AS s; UPDATE t SET v = 1 WHERE id IN (1, 2) -- ?";
    expect(queryFormat(text, [], "Z")).toBe(text);
    expect(queryFormat(text, undefined, "Z")).toBe(text);
  });

  it("formats a text with values exactly as mysql2's own format does, in the connection's time zone", () => {
    const text = "SELECT ?, ?, ?, ? FROM t WHERE note = '?' AND id IN (?)";
    const values = [42, "it's", new Date(Date.UTC(2026, 11, 6, 1, 2, 3, 4)), null, [1n, 2n]];
    expect(queryFormat(text, values, "Z")).toBe(
      "SELECT 42, 'it\\'s', '2026-12-06 01:02:03.004', NULL FROM t WHERE note = '?' AND id IN (1, 2)",
    );
    expect(queryFormat(text, values, "+05:00")).toBe(mysql.format(text, values, false, "+05:00"));
    expect(queryFormat(text, values, "+05:00")).toContain("'2026-12-06 06:02:03.004'");
  });
});
