import { thrownBy } from "../support/code-of.js";
import { describe, expect, it } from "vitest";
import {
  capLine,
  createLogger,
  LOG_LINE_BYTES_MAX,
  messageWithoutValues,
  serializeError,
  statementWithoutValues,
  unavailableCause,
} from "../../src/logger.js";

describe("statementWithoutValues", () => {
  it.each([
    ["INSERT INTO `t1` (a, b) VALUES ('x', 42)", "INSERT INTO `t1` (a, b) VALUES (?, ?)"],
    ["SELECT * FROM t WHERE a = 'it''s' AND b = 'a\\'b' AND c = -7.5", "SELECT * FROM t WHERE a = ? AND b = ? AND c = -?"],
    ['UPDATE t SET m = "{\\"k\\": \\"v\\"}" WHERE id = 1e3', "UPDATE t SET m = ? WHERE id = ?"],
    ["SELECT x'00ff', col2 FROM t", "SELECT x?, col2 FROM t"],
    ["INSERT INTO t VALUES ('unterminated", "INSERT INTO t VALUES (?"],
  ])("%s", (sql, expected) => {
    expect(statementWithoutValues(sql)).toBe(expected);
  });

  it("cuts long statements and never shows a literal cut in half", () => {
    const sql = `INSERT INTO t VALUES ${Array.from({ length: 1000 }, () => "('secret')").join(",")}`;
    const logged = statementWithoutValues(sql, 100);
    expect(logged).toHaveLength(101);
    expect(logged.endsWith("…")).toBe(true);
    expect(logged).not.toContain("secret");
    expect(statementWithoutValues(`SELECT '${"s".repeat(10_000)}'`, 100)).toBe("SELECT ?");
  });
});

describe("messageWithoutValues", () => {
  it.each([
    ["Duplicate entry 'alice@example.com' for key 'email_uq'", "Duplicate entry '?' for key '?'"],
    ["Duplicate entry 'O'Brien' for key 'k'", "Duplicate entry '?' for key '?'"],
    ["Table 'db.ledger' doesn't exist", "Table '?' doesn't exist"],
    ["Incorrect string value: '\\xF0\\x9F' for column `c`", "Incorrect string value: '?' for column `c`"],
    ["unterminated 'secret", "unterminated '?'"],
  ])("%s", (message, expected) => {
    expect(messageWithoutValues(message)).toBe(expected);
  });
});

describe("serializeError", () => {
  it("logs a mysql2 error's statement without values and its message without quoted parts", () => {
    const error = Object.assign(new Error("Duplicate entry 'alice@example.com' for key 'email_uq'"), {
      code: "ER_DUP_ENTRY",
      errno: 1062,
      sqlState: "23000",
      sqlMessage: "Duplicate entry 'alice@example.com' for key 'email_uq'",
      sql: "INSERT INTO customers (email) VALUES ('alice@example.com')",
    });
    const logged = serializeError(new Error("wrapped", { cause: error }));
    expect(logged.cause).toMatchObject({
      type: "Error",
      message: "Duplicate entry '?' for key '?'",
      code: "ER_DUP_ENTRY",
      errno: 1062,
      sqlState: "23000",
      sql: "INSERT INTO customers (email) VALUES (?)",
    });
    expect(JSON.stringify(logged)).not.toContain("alice");
    expect(logged.stack?.split("\n")[0]).toBe("Error: wrapped");
  });

  it("drops drizzle's params, which its message repeats", () => {
    const error = Object.assign(new Error("Failed query: select ? from t\nparams: secret-param"), {
      query: "select ? from t",
      params: ["secret-param"],
    });
    const logged = serializeError(error);
    expect(logged).toMatchObject({ message: "Failed query", sql: "select ? from t" });
    expect(JSON.stringify(logged)).not.toContain("secret-param");
  });

  it("withholds the message of a runtime conversion error, which names the value unquoted", () => {
    for (const error of [thrownBy(() => BigInt("card-4111")), thrownBy(() => BigInt(4111.5))]) {
      const logged = serializeError(new Error("wrapped", { cause: error }));
      expect(logged.cause?.message).toBe("(message withheld: it may quote a value)");
      expect(logged.cause?.stack?.split("\n")[0]).toMatch(/^(SyntaxError|RangeError): \(message withheld/);
      expect(JSON.stringify(logged)).not.toContain("4111");
    }
    expect(serializeError(new TypeError("Cannot read properties of undefined (reading 'pk')")).message).toBe(
      "Cannot read properties of undefined (reading '?')",
    );
  });

  it("logs only the type of a thrown non-error", () => {
    expect(serializeError("secret text")).toEqual({ type: "string" });
  });
});

describe("log lines", () => {
  it("pass unchanged under the cap", () => {
    const line = `{"level":30,"time":1,"msg":"${"x".repeat(100)}"}\n`;
    expect(capLine(line)).toBe(line);
  });

  it.each([
    ["ASCII", "x"],
    ["3-byte characters", "中"],
    ["characters JSON escapes", '"\\'],
  ])("over the cap become one short valid JSON line (%s)", (_name, unit) => {
    const line = `{"level":50,"time":1234,"msg":"${unit.repeat(LOG_LINE_BYTES_MAX)}"}\n`;
    const capped = capLine(line);
    expect(Buffer.byteLength(capped)).toBeLessThanOrEqual(LOG_LINE_BYTES_MAX);
    expect(capped.endsWith("\n")).toBe(true);
    expect(JSON.parse(capped)).toMatchObject({
      level: 50,
      time: 1234,
      msg: `log line of ${Buffer.byteLength(line)} bytes cut at ${LOG_LINE_BYTES_MAX}`,
    });
  });

  it("are capped by the service's logger", () => {
    const lines: string[] = [];
    const log = createLogger("info", { write: (line: string) => void lines.push(line) });
    log.info({ big: "y".repeat(5 * LOG_LINE_BYTES_MAX) }, "huge");
    log.error({ err: Object.assign(new Error("boom"), { sql: `INSERT INTO t VALUES ('${"secret".repeat(10_000)}')` }) }, "failed");
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(Buffer.byteLength(line)).toBeLessThanOrEqual(LOG_LINE_BYTES_MAX);
    expect(JSON.parse(lines[1] ?? "").err.sql).toBe("INSERT INTO t VALUES (?)");
  });
});

describe("unavailableCause", () => {
  it("names a service_unavailable's driver failure by errno and code, or as fatal, never by its message", () => {
    const driver = Object.assign(new Error("Lock wait timeout exceeded; try restarting transaction 'secret'"), {
      errno: 1205,
      code: "ER_LOCK_WAIT_TIMEOUT",
    });
    const closed = Object.assign(new Error("Can't add new command when connection is in closed state"), { fatal: true });
    expect(unavailableCause({ code: "service_unavailable", cause: new Error("wrapped", { cause: driver }) })).toEqual({
      errno: 1205,
      code: "ER_LOCK_WAIT_TIMEOUT",
    });
    expect(unavailableCause({ code: "service_unavailable", cause: closed })).toEqual({ fatal: true });
    expect(unavailableCause({ code: "service_unavailable" })).toBeUndefined();
    expect(unavailableCause({ code: "insufficient_balance", cause: driver })).toBeUndefined();
  });
});
