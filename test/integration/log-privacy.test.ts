import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLedger } from "../../src/operations/verify.js";
import { LOG_LINE_BYTES_MAX } from "../../src/logger.js";
import { expectError } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Unexpected database errors carry the statement with every value filled in (mysql2) or the
// values themselves (drizzle's params, MySQL's "Duplicate entry '…'"). None of it may reach the log.
const lines: string[] = [];
let s: TestServer;

beforeAll(async () => {
  s = await startTestServer({}, { logDestination: { write: (line: string) => void lines.push(line) } });
});

afterAll(async () => {
  await s?.stop();
});

const SECRETS = {
  name: "Alice Secretname",
  email: "alice.secret@example.com",
  description: `secret-description ${"d".repeat(1000)}`,
  metadataValue: "secret-metadata-value",
};

function depositWithCustomerData(customerId: string) {
  return s.client.call("deposit", {
    customerId,
    amount: 10n,
    name: SECRETS.name,
    email: SECRETS.email,
    description: SECRETS.description,
    metadata: Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`key${i}`, `${SECRETS.metadataValue}-${"m".repeat(900)}`])),
  });
}

/** The error lines logged while `run` ran; asserts every line is under the cap and free of request values. */
async function loggedWhile(run: () => Promise<void>): Promise<Array<{ err: Record<string, unknown> }>> {
  const from = lines.length;
  await run();
  const written = lines.slice(from);
  for (const line of written) {
    expect(Buffer.byteLength(line)).toBeLessThanOrEqual(LOG_LINE_BYTES_MAX);
    for (const secret of [SECRETS.name, SECRETS.email, "secret-description", SECRETS.metadataValue]) expect(line).not.toContain(secret);
  }
  return written.map((line) => JSON.parse(line) as { level: number; err: Record<string, unknown> }).filter((l) => l.level >= 50);
}

describe("an unexpected database error", () => {
  it("logs the failed statement without its values, cut, on one capped line", async () => {
    // (A table taken away would be an outage, service_unavailable: a column is a bug's error.)
    await s.app.database.pool.query("ALTER TABLE ledger_entries RENAME COLUMN description TO description_away");
    try {
      const errors = await loggedWhile(() => expectError(depositWithCustomerData(uid("logged")), "server_error").then(() => undefined));
      expect(errors).toHaveLength(1);
      const err = errors[0]?.err ?? {};
      expect(err).toMatchObject({ code: "ER_BAD_FIELD_ERROR", errno: 1054 });
      expect(String(err.message)).toBe("Unknown column '?' in '?'");
      // The deposit's second round trip: the account credit, then the ledger entry that fails.
      expect(String(err.sql)).toMatch(/^INSERT INTO `accounts` \(project_id, .*\n {4}VALUES \(\?, \?, \?, /);
      expect(String(err.sql)).toContain("INSERT INTO `ledger_entries` (project_id, ");
      expect(String(err.sql).length).toBeLessThanOrEqual(513);
    } finally {
      await s.app.database.pool.query("ALTER TABLE ledger_entries RENAME COLUMN description_away TO description");
    }
  });

  it("logs a message that quotes a value without the value", async () => {
    await s.app.database.pool.query("CREATE UNIQUE INDEX ledger_description_probe ON ledger_entries (description(64))");
    try {
      await depositWithCustomerData(uid("first"));
      const errors = await loggedWhile(() => expectError(depositWithCustomerData(uid("second")), "server_error").then(() => undefined));
      expect(errors).toHaveLength(1);
      expect(errors[0]?.err).toMatchObject({ code: "ER_DUP_ENTRY", errno: 1062, message: "Duplicate entry '?' for key '?'" });
    } finally {
      await s.app.database.pool.query("DROP INDEX ledger_description_probe ON ledger_entries");
    }
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });
});

describe("a client that closes its connection in the middle of a body", () => {
  it.each([
    ["the API", "/v1/billing/deduct", "application/json", '{"customer_id":'],
    // Unauthenticated: anyone could otherwise fill the log with error lines and stack traces.
    ["the console's sign-in", "/console/sign-in", "application/x-www-form-urlencoded", "a="],
  ])("%s: is one info line saying so, not an unexpected error", async (_name, path, contentType, partial) => {
    const { hostname, port } = new URL(s.httpUrl);
    const from = lines.length;
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => {
        socket.write(
          `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.apiKey}\r\n` +
            `Content-Type: ${contentType}\r\nContent-Length: 50\r\n\r\n${partial}`,
        );
        setTimeout(() => socket.destroy(), 100);
      });
      socket.on("close", () => resolve());
      socket.on("error", reject);
    });
    const said = async () => lines.slice(from).map((line) => JSON.parse(line) as { level: number; msg: string });
    for (let i = 0; i < 100 && (await said()).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100)); // and nothing after it
    expect((await said()).map((l) => [l.level, l.msg])).toEqual([[30, "the client closed the connection before its request arrived"]]);
  });
});
