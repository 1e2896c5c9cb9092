import mysql, { type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { voidDeposit } from "../../src/operations/reversal.js";
import { openDatabase, type Database } from "../../src/store/database.js";
import { readFeedChecked } from "../../src/store/event-feed-store.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { uid } from "../support/fixtures.js";
import { waitFor } from "../support/waiting.js";

// What a read of one customer's (or one type's) events and a void of an old deposit cost, in rows
// the database reads (the session's Handler_read_* counters, on a connection of their own): the
// part of the history they need, not the history in between (migration 0021's indexes). Measured:
// 5, 6 and 15 rows; without the indexes 606, 1,206 and 649.

/** Rows another customer writes between the reads' own: far more than any of the reads may touch. */
const OTHERS = 600;
const BATCH = 100;

type Queryable = Pick<mysql.Pool, "query">;

/** Every row the session's handlers read so far: index lookups, steps along an index, scans. */
async function rowsRead(connection: Queryable): Promise<number> {
  const [rows] = await connection.query<RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Handler_read%'");
  return rows.reduce((sum, row) => sum + Number(row.Value), 0);
}

/** The rows `work` read on `connection`, less the status query's own (read once before it). */
async function rowsReadBy(connection: Queryable, work: () => Promise<unknown>): Promise<number> {
  const idle = (await rowsRead(connection)) - (await rowsRead(connection));
  const before = await rowsRead(connection);
  await work();
  return (await rowsRead(connection)) - before + idle;
}

describe("reads that need part of a long history", () => {
  let s: TestServer;
  let one: mysql.Pool;
  let database: Database;
  let projectId: bigint;
  const customerId = uid("cust");
  const busy = uid("busy");
  let firstDeposit: bigint;

  beforeAll(async () => {
    s = await startTestServer();
    firstDeposit = BigInt((await s.client.call("deposit", { customerId, amount: 1_000n })).ledgerEntryId);
    // One other customer's many writes, then this customer's own many, each a ledger entry and an event.
    await s.client.call("deposit", { customerId: busy, amount: 1_000_000n });
    for (let b = 0; b < OTHERS / BATCH; b++) {
      const operations = Array.from({ length: BATCH }, (_, i) => ({
        operation: { $case: "deduct" as const, value: { customerId: busy, transactionId: uid(`d${b}-${i}`), amount: 1n } },
      }));
      expect((await s.client.call("batch", { operations, atomic: true })).failedIndex).toBeUndefined();
    }
    await s.client.call("deposit", { customerId, amount: 500n, source: "later" });
    for (let b = 0; b < OTHERS / BATCH; b++) {
      const operations = Array.from({ length: BATCH }, (_, i) => ({
        operation: { $case: "deduct" as const, value: { customerId, transactionId: uid(`own${b}-${i}`), amount: 1n } },
      }));
      expect((await s.client.call("batch", { operations, atomic: true })).failedIndex).toBeUndefined();
    }
    const [rows] = await s.app.database.pool.query<RowDataPacket[]>("SELECT project_id FROM customers WHERE customer_id = ?", [customerId]);
    projectId = BigInt(String(rows[0]?.project_id));
    const events = 2 + 1 + 2 * OTHERS;
    await waitFor(async () => {
      const [stamped] = await s.app.database.pool.query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM events WHERE project_id = ? AND project_position IS NOT NULL",
        [projectId.toString()],
      );
      return Number(stamped[0]?.n) === events;
    }, "every event stamped");
    await s.app.database.pool.query("ANALYZE TABLE events, ledger_entries");
    one = mysql.createPool({
      uri: s.databaseUrl,
      connectionLimit: 1,
      multipleStatements: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
    });
    database = await openDatabase(s.databaseUrl, { poolSize: 1 });
  }, 120_000);

  afterAll(async () => {
    await one?.end();
    await database?.close();
    await s?.stop();
  });

  it("reads one customer's events from the oldest cursor without reading the others' (600 between its first and the rest)", async () => {
    let read: Awaited<ReturnType<typeof readFeedChecked>> | undefined;
    const rows = await rowsReadBy(one, async () => {
      read = await readFeedChecked(one, { projectId, after: 0n, customerId, types: [] }, 3);
    });
    expect(read?.rows.map((e) => e.type)).toEqual(["ledger.deposit", "ledger.deposit", "ledger.deduct"]);
    expect(rows).toBeLessThanOrEqual(20);
  });

  it("reads one type's events from the oldest cursor without reading the other types'", async () => {
    let read: Awaited<ReturnType<typeof readFeedChecked>> | undefined;
    const rows = await rowsReadBy(one, async () => {
      read = await readFeedChecked(one, { projectId, after: 0n, customerId: null, types: ["ledger.deposit"] }, 10);
    });
    expect(read?.rows.map((e) => e.customerId)).toEqual([customerId, busy, customerId]);
    expect(rows).toBeLessThanOrEqual(20);
  });

  it("voids its first deposit without reading the 600 entries after it", async () => {
    // Run here, on the one connection, not handed to the instance's group commit.
    const { groupCommit, ...alone } = s.app.context;
    expect(groupCommit).toBeDefined();
    const ctx = { ...alone, database };
    let voided: Awaited<ReturnType<typeof voidDeposit>> | undefined;
    const rows = await rowsReadBy(database.pool, async () => {
      voided = await voidDeposit(ctx, { projectId, apiKeyId: null, customerId, recordId: firstDeposit, voidId: uid("void"), amount: 10n });
    });
    expect([voided?.voidedAmount, voided?.balance.total]).toEqual([10n, 1_490n]);
    expect(rows).toBeLessThanOrEqual(60);
  });
});
