import mysql, { type RowDataPacket } from "mysql2/promise";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PartialOf, RequestOf } from "../../src/client/billing-client.js";
import { voidDeposit } from "../../src/operations/reversal.js";
import { deduct } from "../../src/operations/spend.js";
import { sweep } from "../../src/operations/sweeper.js";
import { openDatabase, type Database } from "../../src/store/database.js";
import { readFeedChecked } from "../../src/store/event-feed-store.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { ts, uid } from "../support/fixtures.js";
import { waitFor } from "../support/waiting.js";

// What a read of one customer's (or one type's) events and a void of an old deposit cost, in rows
// the database reads (the session's Handler_read_* counters, on a connection of their own): the
// part of the history they need, not the history in between (migrations 0021 and 0022). Measured:
// 8, 9 and 18 rows; without 0021's indexes 606, 1,206 and 1,254.

/** Rows another customer writes between the reads' own: far more than any of the reads may touch. */
const OTHERS = 600;
const BATCH = 100;

type Queryable = Pick<mysql.Pool, "query">;

/**
 * Every row the session's handlers read so far: index lookups, steps along an index, scans, and
 * the index entries InnoDB itself filtered out by a pushed-down condition (MariaDB's
 * Handler_icp_attempts), which the Handler_read_* counters never see.
 */
async function rowsRead(connection: Queryable): Promise<number> {
  const [rows] = await connection.query<RowDataPacket[]>(
    "SHOW SESSION STATUS WHERE Variable_name LIKE 'Handler_read%' OR Variable_name = 'Handler_icp_attempts'",
  );
  return rows.reduce((sum, row) => sum + Number(row.Value), 0);
}

/** The rows `work` read on `connection`, less the status query's own (read once before it). */
async function rowsReadBy(connection: Queryable, work: () => Promise<unknown>): Promise<number> {
  const idle = (await rowsRead(connection)) - (await rowsRead(connection));
  const before = await rowsRead(connection);
  await work();
  return (await rowsRead(connection)) - before + idle;
}

/** A Deduct as a call alone makes it. */
const deductOf = (projectId: bigint, customerId: string, amount: bigint) => ({
  projectId,
  apiKeyId: null,
  customerId,
  transactionId: uid("d"),
  amount,
  creditTypes: [],
  businessType: 0,
  description: "",
  metadata: {},
});

type BatchOperation = NonNullable<PartialOf<RequestOf<"batch">>["operations"]>[number];

/** `count` operations (`operationOf` the n-th), in atomic batches of BATCH, each batch applied whole. */
async function inBatches(s: TestServer, count: number, operationOf: (n: number) => BatchOperation): Promise<void> {
  for (let start = 0; start < count; start += BATCH) {
    const operations = Array.from({ length: Math.min(BATCH, count - start) }, (_, i) => operationOf(start + i));
    expect((await s.client.call("batch", { operations, atomic: true })).failedIndex).toBeUndefined();
  }
}

/** `count` deposits of 10 to the customer, each its own account (its own source). */
const depositEach = (s: TestServer, customerId: string, count: number, dates: { expiresAt?: ReturnType<typeof ts> }) =>
  inBatches(s, count, (n) => ({ operation: { $case: "deposit", value: { customerId, amount: 10n, source: `grant-${n}`, ...dates } } }));

/** `count` Deducts of 1 from the customer, each its own transaction. */
const deductEach = (s: TestServer, customerId: string, count: number) =>
  inBatches(s, count, () => ({ operation: { $case: "deduct", value: { customerId, transactionId: uid("d"), amount: 1n } } }));

/** The customer's project, as the server made it. */
async function projectOf(s: TestServer, customerId: string): Promise<bigint> {
  const [rows] = await s.app.database.pool.query<RowDataPacket[]>("SELECT project_id FROM customers WHERE customer_id = ?", [customerId]);
  return BigInt(String(rows[0]?.project_id));
}

/** The server's context on `database`'s one connection, a write run there, not handed to the instance's group commit. */
function contextOn(s: TestServer, database: Database) {
  const { groupCommit, ...alone } = s.app.context;
  expect(groupCommit).toBeDefined();
  return { ...alone, database };
}

describe("reads that need part of a long history", () => {
  let s: TestServer;
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
    await deductEach(s, busy, OTHERS);
    await s.client.call("deposit", { customerId, amount: 500n, source: "later" });
    await deductEach(s, customerId, OTHERS);
    projectId = await projectOf(s, customerId);
    const events = 2 + 1 + 2 * OTHERS;
    await waitFor(async () => {
      const [stamped] = await s.app.database.pool.query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM events WHERE project_id = ? AND project_position IS NOT NULL",
        [projectId.toString()],
      );
      return Number(stamped[0]?.n) === events;
    }, "every event stamped");
    await s.app.database.pool.query("ANALYZE TABLE events, ledger_entries");
    database = await openDatabase(s.databaseUrl, { poolSize: 1 });
  }, 120_000);

  afterAll(async () => {
    await database?.close();
    await s?.stop();
  });

  it("reads one customer's events from the oldest cursor without reading the others' (600 between its first and the rest)", async () => {
    let read: Awaited<ReturnType<typeof readFeedChecked>> | undefined;
    const rows = await rowsReadBy(database.pool, async () => {
      read = await readFeedChecked(database.pool, { projectId, after: 0n, customerId, types: [] }, 3);
    });
    expect(read?.rows.map((e) => e.type)).toEqual(["ledger.deposit", "ledger.deposit", "ledger.deduct"]);
    expect(rows).toBeLessThanOrEqual(20);
  });

  it("reads one type's events from the oldest cursor without reading the other types'", async () => {
    let read: Awaited<ReturnType<typeof readFeedChecked>> | undefined;
    const rows = await rowsReadBy(database.pool, async () => {
      read = await readFeedChecked(database.pool, { projectId, after: 0n, customerId: null, types: ["ledger.deposit"] }, 10);
    });
    expect(read?.rows.map((e) => e.customerId)).toEqual([customerId, busy, customerId]);
    expect(rows).toBeLessThanOrEqual(20);
  });

  it("voids its first deposit without reading the 600 entries after it", async () => {
    const ctx = contextOn(s, database);
    let voided: Awaited<ReturnType<typeof voidDeposit>> | undefined;
    const rows = await rowsReadBy(database.pool, async () => {
      voided = await voidDeposit(ctx, { projectId, apiKeyId: null, customerId, recordId: firstDeposit, voidId: uid("void"), amount: 10n });
    });
    expect([voided?.voidedAmount, voided?.balance.total]).toEqual([10n, 1_490n]);
    expect(rows).toBeLessThanOrEqual(60);
  });
});

describe("a write of a customer with many ACTIVE accounts", () => {
  let s: TestServer;
  let database: Database;
  const customerId = uid("wide");
  const ACTIVE = 300;

  beforeAll(async () => {
    s = await startTestServer();
    await depositEach(s, customerId, ACTIVE, {});
    // In its ledger position, not ACTIVE: one not started yet, one expired with its expiry not recorded (no sweeper here).
    await s.client.call("deposit", { customerId, amount: 1_000n, source: "later", startsAt: ts(s.clock.now() + 3_600_000) });
    await s.client.call("deposit", { customerId, amount: 500n, source: "brief", expiresAt: ts(s.clock.now() + 60_000) });
    s.clock.advance(61_000);
    database = await openDatabase(s.databaseUrl, { poolSize: 1 });
  }, 120_000);

  afterAll(async () => {
    await database?.close();
    await s?.stop();
  });

  it("reads the accounts between states, not the ACTIVE ones, and answers the ACTIVE balance as GetCustomer does", async () => {
    const projectId = await projectOf(s, customerId);
    const ctx = contextOn(s, database);
    let spent: Awaited<ReturnType<typeof deduct>> | undefined;
    const read = await rowsReadBy(database.pool, async () => {
      spent = await deduct(ctx, deductOf(projectId, customerId, 5n));
    });
    expect(spent?.balance).toEqual({ total: 3_000n, used: 5n, frozen: 0n, available: 2_995n });
    const customer = await s.client.call("getCustomer", { customerId });
    expect([customer.balance?.total, customer.balance?.used, customer.balance?.available]).toEqual([3_000n, 5n, 2_995n]);
    // The whole Deduct, its writes included: 112 rows; 399 when its lock summed the ACTIVE accounts.
    expect(read).toBeLessThanOrEqual(150);
  });
});

describe("a spend of a customer with a long past", () => {
  let s: TestServer;
  let database: Database;
  const customerId = uid("old");
  const PAST = 200;

  beforeAll(async () => {
    s = await startTestServer();
    // 200 accounts spent in part, expired and recorded (their EXPIRE entries written), then one to spend.
    await depositEach(s, customerId, PAST, { expiresAt: ts(s.clock.now() + 60_000) });
    await s.client.call("deduct", { customerId, transactionId: uid("d"), amount: 1n });
    s.clock.advance(61_000);
    expect((await sweep(s.app.context, pino({ level: "silent" }))).recorded).toBe(PAST);
    await s.client.call("deposit", { customerId, amount: 100n, source: "now" });
    database = await openDatabase(s.databaseUrl, { poolSize: 1 });
  }, 120_000);

  afterAll(async () => {
    await database?.close();
    await s?.stop();
  });

  it("reads none of its past on the way to its first spendable account", async () => {
    const projectId = await projectOf(s, customerId);
    let spent: Awaited<ReturnType<typeof deduct>> | undefined;
    const read = await rowsReadBy(database.pool, async () => {
      spent = await deduct(contextOn(s, database), deductOf(projectId, customerId, 5n));
    });
    expect([spent?.details.map((d) => d.source), spent?.balance]).toEqual([["now"], { total: 100n, used: 5n, frozen: 0n, available: 95n }]);
    // The whole Deduct: 17 rows; 217 by the spending index before 0022, which led with the expiry.
    expect(read).toBeLessThanOrEqual(60);
  });
});
