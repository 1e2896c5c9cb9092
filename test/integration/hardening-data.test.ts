import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import mysql from "mysql2/promise";
import { recordExpiries } from "../../src/operations/expiry.js";
import { sweepDueHolds } from "../../src/operations/sweeper.js";
import { runTransaction } from "../../src/store/run-transaction.js";
import { isRowCountGuardFailure } from "../../src/store/sql-errors.js";
import { findTransaction } from "../../src/store/transactions-store.js";
import { writeSetSql } from "../../src/store/write-set.js";
import { type SQL, sql } from "../../src/store/sql.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { expectError } from "../support/client.js";
import { expectHttpError, httpClientFor, ok } from "../support/http.js";
import { SECOND, ts, uid } from "../support/fixtures.js";
import { AccountStatus, OperationType as Op, TransactionStatus as TxStatus } from "../../gen/velobase/billing/v1/billing.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Issue 9: each test replays an input of the hostile-input probe or the code review and asserts
// what a client receives, then that the ledger still verifies.

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

const expectLedgerVerifies = async () => expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);

/** The largest metadata the documented limits allow: 32 keys of 64 and values of 1024 code units. */
function largestMetadata(unit: string): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (let i = 0; i < 32; i++) metadata[String(i).padStart(2, "0") + unit.repeat(62)] = unit.repeat(1024);
  return metadata;
}

describe("finding 1: a response that cannot be serialized", () => {
  it("is a logged server_error, counted as server_error, not a bare INTERNAL counted as ok", async () => {
    // A server of its own: its stored data is made to overflow, and its log and metrics are read.
    const lines: string[] = [];
    const own = await startTestServer({}, { logDestination: { write: (line: string) => lines.push(line) } });
    try {
      // Two accounts of one customer, each within int64, whose totals sum past 2^63 - 1: the
      // customer's balance, which GetCustomer sends as int64, cannot be encoded.
      const customerId = uid("cust");
      const a = await own.client.call("deposit", { customerId, amount: 5n });
      const b = await own.client.call("deposit", { customerId, amount: 5n, creditType: "other" });
      const half = 2n ** 62n;
      const [updated] = await own.app.database.pool.query("UPDATE accounts SET total = ? WHERE id IN (?, ?)", [
        String(half),
        a.account?.id,
        b.account?.id,
      ]);
      expect((updated as { affectedRows: number }).affectedRows).toBe(2);
      lines.length = 0;
      await expectError(own.client.call("getCustomer", { customerId }), "server_error");
      const counted = (await own.app.metrics.calls.get()).values.map((v) => [v.labels.method, v.labels.code, v.value]);
      expect(counted).toEqual([
        ["Deposit", "ok", 2],
        ["GetCustomer", "server_error", 1],
      ]);
      const logged = lines.map((l) => JSON.parse(l) as { level: number; msg: string; code?: string; err?: { message: string } });
      expect(logged.filter((l) => l.code !== undefined).map((l) => [l.level, l.code, l.msg, l.err?.message])).toEqual([
        [50, "server_error", "call failed with an unexpected error", "GetCustomer response cannot be serialized"],
      ]);
      // The service answers a normal call after it.
      const ok = await own.client.call("deposit", { customerId: uid("cust"), amount: 5n });
      expect(ok.balance?.available).toBe(5n);
    } finally {
      await own.stop();
    }
  });
});

describe("finding 2: metadata inside the documented limits is stored", () => {
  for (const [name, unit] of [
    ["3-byte characters", "中"],
    ["control characters JSON escapes 6 bytes each", "\u0001"],
  ] as const) {
    it(`stores 32 values of 1024 ${name} on Deposit and Deduct`, async () => {
      const customerId = uid("cust");
      const metadata = largestMetadata(unit);
      const d = await s.client.call("deposit", { customerId, amount: 100n, metadata });
      expect(d.balance?.available).toBe(100n);
      const transactionId = uid("tx");
      const r = await s.client.call("deduct", { customerId, transactionId, amount: 40n, metadata });
      expect(r.balance?.available).toBe(60n);
      expect((await s.client.call("getCustomer", { customerId })).metadata).toEqual(metadata);
      const ledger = await s.client.call("listLedgerEntries", { customerId });
      expect(ledger.entries.map((e) => [e.amount, e.metadata])).toEqual([
        [40n, metadata],
        [100n, metadata],
      ]);
      await expectLedgerVerifies();
    });
  }
});

const CUSTOMER_MAX = 2n ** 53n - 1n;
const AMOUNT_MAX = 10n ** 15n;

/** Runs `count` calls of `call(i)` over `concurrency` workers. */
async function inParallel(count: number, concurrency: number, call: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await call(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

describe("a customer whose default account is filled to 2^53 - 1, the customer limit", () => {
  const customerId = uid("cust");
  const firstKey = uid("dep");
  let first: Awaited<ReturnType<typeof s.client.call<"deposit">>>;
  beforeAll(async () => {
    // The probe's input scaled to the limit: 9 deposits of 10^15, then 7199254740991 more.
    first = await s.client.call("deposit", { customerId, amount: AMOUNT_MAX, idempotencyKey: firstKey });
    await inParallel(8, 4, () => s.client.call("deposit", { customerId, amount: AMOUNT_MAX }));
    const last = await s.client.call("deposit", { customerId, amount: 7_199_254_740_991n });
    expect(last.account?.total).toBe(CUSTOMER_MAX);
    expect(last.balance).toEqual({ total: CUSTOMER_MAX, used: 0n, frozen: 0n, available: CUSTOMER_MAX });
  });

  it("finding 1: refuses a deposit beyond 2^53 - 1 in all, and the customer stays usable", async () => {
    const info = await expectError(
      s.client.call("deposit", { customerId, amount: 1n, creditType: "other" }),
      "invalid_argument",
      "The deposit would take the customer's credits beyond 9007199254740991.",
    );
    expect(info).toEqual({ field: "amount", requested: "1", remaining: "0" });
    const customer = await s.client.call("getCustomer", { customerId, includeInactive: true });
    expect(customer.balance).toEqual({ total: CUSTOMER_MAX, used: 0n, frozen: 0n, available: CUSTOMER_MAX });
    expect(customer.creditTypes.map((t) => t.creditType)).toEqual(["default"]);
    const deducted = await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 1n });
    expect(deducted.balance).toEqual({ total: CUSTOMER_MAX, used: 1n, frozen: 0n, available: CUSTOMER_MAX - 1n });
    const holdId = uid("hold");
    const frozen = await s.client.call("freeze", { customerId, transactionId: holdId, amount: 2n });
    expect(frozen.balance?.available).toBe(CUSTOMER_MAX - 3n);
    const unfrozen = await s.client.call("unfreeze", { transactionId: holdId });
    expect(unfrozen.balance).toEqual({ total: CUSTOMER_MAX, used: 1n, frozen: 0n, available: CUSTOMER_MAX - 1n });
    await expectLedgerVerifies();
  });

  it("finding 5: replays a deposit repeated after its account became full", async () => {
    const replay = await s.client.call("deposit", { customerId, amount: AMOUNT_MAX, idempotencyKey: firstKey });
    expect(replay).toEqual({ ...first, isIdempotentReplay: true });
    const info = await expectError(
      s.client.call("deposit", { customerId, amount: 1n, idempotencyKey: uid("dep") }),
      "invalid_argument",
      undefined,
      { messageFree: true },
    );
    expect(info.field).toBe("amount");
    await expectLedgerVerifies();
  });
});

describe("finding 1 over HTTP: every balance stays an exact JSON number", () => {
  it("deposits up to 2^53 - 1, refuses one more with invalid_argument, and GET customer still answers", async () => {
    const http = await httpClientFor(s);
    const customerId = uid("cust");
    const deposit = (amount: number, wallet = "default") => http.post("/v1/customers/deposit", { customer_id: customerId, amount, wallet });
    for (let i = 0; i < 9; i++) ok(await deposit(Number(AMOUNT_MAX)));
    const last = ok(await deposit(7_199_254_740_991));
    expect(last).toMatchObject({ total_amount: Number.MAX_SAFE_INTEGER, added_amount: 7_199_254_740_991 });
    expectHttpError(await deposit(1, "other"), "invalid_argument", {
      message: "The deposit would take the customer's credits beyond 9007199254740991.",
      details: { field: "amount", requested: 1, remaining: 0 },
    });
    const customer = ok(await http.get(`/v1/customers/${customerId}`));
    expect(customer.wallets).toEqual({
      default: {
        total: Number.MAX_SAFE_INTEGER,
        used: 0,
        frozen: 0,
        available: Number.MAX_SAFE_INTEGER,
        sources: [
          {
            source: "default",
            total: Number.MAX_SAFE_INTEGER,
            used: 0,
            frozen: 0,
            available: Number.MAX_SAFE_INTEGER,
            starts_at: null,
            expires_at: null,
          },
        ],
      },
    });
    await expectLedgerVerifies();
  });
});

describe("the customer limit counts credits past their expiry until the sweeper records it", () => {
  it("refuses a deposit that would take the ledger's balance_after beyond 2^53 - 1, so every ledger page stays an exact JSON number", async () => {
    const http = await httpClientFor(s);
    const customerId = uid("cust");
    const expiresAt = ts(s.clock.now() + 60 * SECOND);
    for (let i = 0; i < 9; i++) await s.client.call("deposit", { customerId, amount: AMOUNT_MAX, expiresAt });
    await s.client.call("deposit", { customerId, amount: 7_199_254_740_991n, expiresAt });
    s.clock.advance(61 * SECOND);
    // Expired, not yet recorded: GetCustomer's balance is 0, the ledger's total still 2^53 - 1.
    expect((await s.client.call("getCustomer", { customerId })).balance?.total).toBe(0n);
    const info = await expectError(
      s.client.call("deposit", { customerId, amount: 1n }),
      "invalid_argument",
      "The deposit would take the customer's credits beyond 9007199254740991.",
    );
    expect(info).toEqual({ field: "amount", requested: "1", remaining: "0" });
    const page = ok<{ items: { balance_after: unknown }[] }>(await http.get(`/v1/customers/${customerId}/ledger?limit=1`));
    expect(page.items[0]?.balance_after).toMatchObject({ total: Number.MAX_SAFE_INTEGER });
    // Once the expiry is on the ledger, the credits are gone from its total and the room is back.
    await recordExpiries(s.app.context);
    const after = await s.client.call("deposit", { customerId, amount: 5n });
    expect(after.balance).toEqual({ total: 5n, used: 0n, frozen: 0n, available: 5n });
    await expectLedgerVerifies();
  });
});

describe("finding 8: the first and last valid timestamps are stored as sent", () => {
  it("keeps starts_at 0001-01-01T00:00:00Z apart from an account without a start", async () => {
    const customerId = uid("cust");
    const yearOne = { seconds: -62_135_596_800n, nanos: 0 };
    const lastInstant = { seconds: 253_402_300_799n, nanos: 999_000_000 };
    const sent = await s.client.call("deposit", { customerId, amount: 10n, startsAt: yearOne, expiresAt: lastInstant });
    expect(sent.account).toMatchObject({ startsAt: yearOne, expiresAt: lastInstant, status: AccountStatus.ACCOUNT_STATUS_ACTIVE });
    const unbounded = await s.client.call("deposit", { customerId, amount: 5n });
    expect(unbounded.account).toMatchObject({ startsAt: undefined, expiresAt: undefined, total: 5n });
    expect(unbounded.account?.id).not.toBe(sent.account?.id);
    const accounts = (await s.client.call("getCustomer", { customerId })).creditTypes[0]?.accounts ?? [];
    expect(accounts.map((a) => [a.startsAt, a.expiresAt, a.total])).toEqual([
      [yearOne, lastInstant, 10n],
      [undefined, undefined, 5n],
    ]);
    await expectLedgerVerifies();
  });
});

describe("finding 9: credits a settlement returns to an expired account expire at once", () => {
  const history = async (customerId: string) =>
    (await s.client.call("listLedgerEntries", { customerId })).entries.reverse().map((e) => [e.operation, e.amount]);

  it("Deposit 100 expiring in 2 s, Freeze 50, 4 s later Unfreeze: the 50 returned expire with their own entry", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(s.clock.now() + 2 * SECOND) });
    const holdId = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: holdId, amount: 50n });
    s.clock.advance(4 * SECOND);
    expect(await recordExpiries(s.app.context)).toBeGreaterThanOrEqual(1);
    const unfrozen = await s.client.call("unfreeze", { transactionId: holdId });
    expect([unfrozen.unfrozenAmount, unfrozen.balance]).toEqual([50n, { total: 0n, used: 0n, frozen: 0n, available: 0n }]);
    expect(await history(customerId)).toEqual([
      [Op.OPERATION_TYPE_DEPOSIT, 100n],
      [Op.OPERATION_TYPE_FREEZE, 50n],
      [Op.OPERATION_TYPE_EXPIRE, 50n],
      [Op.OPERATION_TYPE_UNFREEZE, 50n],
      [Op.OPERATION_TYPE_EXPIRE, 50n],
    ]);
    const expired = await s.client.call("listLedgerEntries", { customerId, operationTypes: [Op.OPERATION_TYPE_EXPIRE] });
    expect(expired.entries.map((e) => [e.transactionId, e.automatic])).toEqual([
      [holdId, true],
      ["", true],
    ]);
    const customer = await s.client.call("getCustomer", { customerId, includeInactive: true });
    expect(customer.balance).toEqual({ total: 0n, used: 0n, frozen: 0n, available: 0n });
    await expectLedgerVerifies();
  });

  it("a partial Consume charges what it uses and expires what it returns", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(s.clock.now() + 2 * SECOND) });
    const holdId = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: holdId, amount: 50n });
    s.clock.advance(4 * SECOND);
    await recordExpiries(s.app.context);
    const consumed = await s.client.call("consume", { transactionId: holdId, actualAmount: 20n });
    expect([consumed.consumedAmount, consumed.returnedAmount]).toEqual([20n, 30n]);
    expect((await history(customerId)).slice(2)).toEqual([
      [Op.OPERATION_TYPE_EXPIRE, 50n],
      [Op.OPERATION_TYPE_CONSUME, 20n],
      [Op.OPERATION_TYPE_UNFREEZE, 30n],
      [Op.OPERATION_TYPE_EXPIRE, 30n],
    ]);
    await expectLedgerVerifies();
  });

  it("returned before the expiry is recorded, they are recorded with the rest, once", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(s.clock.now() + 2 * SECOND) });
    const holdId = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: holdId, amount: 50n });
    s.clock.advance(4 * SECOND);
    await s.client.call("unfreeze", { transactionId: holdId });
    await recordExpiries(s.app.context);
    expect((await history(customerId)).slice(2)).toEqual([
      [Op.OPERATION_TYPE_UNFREEZE, 50n],
      [Op.OPERATION_TYPE_EXPIRE, 100n],
    ]);
    await expectLedgerVerifies();
  });

  it("verify reports an expired account with credits available beyond its EXPIRE entries", async () => {
    const customerId = uid("cust");
    const d = await s.client.call("deposit", { customerId, amount: 70n, expiresAt: ts(s.clock.now() + 2 * SECOND) });
    s.clock.advance(4 * SECOND);
    // Marked recorded without its EXPIRE entry: what the settlement used to leave behind.
    await s.app.database.pool.query("UPDATE accounts SET expiry_recorded = TRUE WHERE id = ?", [d.account?.id]);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([
      `account ${d.account?.id}: expiry recorded, but no EXPIRE entry`,
      `account ${d.account?.id}: expired, but 70 is available once its EXPIRE entries are counted`,
    ]);
    await s.app.database.pool.query("UPDATE accounts SET expiry_recorded = FALSE WHERE id = ?", [d.account?.id]);
    await recordExpiries(s.app.context);
    await expectLedgerVerifies();
  });
});

describe("finding 10: the sweeper never waits on a busy customer", () => {
  it("settles the other due holds at once while one hold's account, customer or row is locked elsewhere", async () => {
    const holds = Array.from({ length: 100 }, () => ({ customerId: uid("cust"), transactionId: uid("hold"), accountId: "" }));
    await inParallel(holds.length, 16, async (i) => {
      const h = holds[i];
      if (!h) return;
      const d = await s.client.call("deposit", { customerId: h.customerId, amount: 100n });
      h.accountId = d.account?.id ?? "";
      await s.client.call("freeze", { customerId: h.customerId, transactionId: h.transactionId, amount: 40n, unfreezeAfterSeconds: 60n });
    });
    const [byAccount, byCustomer, byHold] = holds as [(typeof holds)[0], (typeof holds)[0], (typeof holds)[0]];
    s.clock.advance(60 * SECOND);
    // Another client in the middle of transactions on three customers: one holds an account
    // lock, one the customer row, one the hold's row (as a Consume in flight would).
    const other = await mysql.createConnection(s.databaseUrl);
    const retriesBefore = (await s.app.metrics.retries.get()).values.reduce((sum, v) => sum + v.value, 0);
    try {
      // By unique key, so that exactly these rows are locked.
      await other.query("BEGIN");
      await other.query("SELECT id FROM accounts WHERE id = ? FOR UPDATE", [byAccount.accountId]);
      await other.query("SELECT id FROM customers WHERE project_id = 1 AND customer_id = ? FOR UPDATE", [byCustomer.customerId]);
      await other.query("SELECT id FROM transactions WHERE project_id = 1 AND transaction_id = ? FOR UPDATE", [byHold.transactionId]);
      let settled = 0;
      for (let pass = 0; pass < 5; pass++) settled += await sweepDueHolds(s.app.context, pino({ level: "silent" }));
      expect(settled).toBe(97);
      const retriesAfter = (await s.app.metrics.retries.get()).values.reduce((sum, v) => sum + v.value, 0);
      expect(retriesAfter).toBe(retriesBefore);
    } finally {
      await other.query("ROLLBACK");
      await other.end();
    }
    for (const busy of [byAccount, byCustomer, byHold]) {
      const t = await s.client.call("getTransaction", { transactionId: busy.transactionId });
      // Still due at its own deadline: skipped, neither waited on nor postponed.
      expect([t.status, t.unfreezeAt?.seconds]).toEqual([TxStatus.TRANSACTION_STATUS_FROZEN, BigInt(s.clock.now() / 1000)]);
    }
    expect(await sweepDueHolds(s.app.context, pino({ level: "silent" }))).toBe(3);
    const customer = await s.client.call("getCustomer", { customerId: byAccount.customerId });
    expect(customer.balance).toEqual({ total: 100n, used: 0n, frozen: 0n, available: 100n });
    await expectLedgerVerifies();
  });
});

describe("finding 11: rows are parsed when read back, guarded updates checked", () => {
  const setStatus = async (transactionId: string, status: string) => {
    const connection = await mysql.createConnection(s.databaseUrl);
    try {
      // The new CHECK constraint refuses the value (first assertion below), so this connection
      // switches CHECKs off for itself (MariaDB's check_constraint_checks) to play a row
      // corrupted some other way: an old row, a bad migration, a hand edit.
      await connection.query("SET SESSION check_constraint_checks = 0");
      await connection.query("UPDATE transactions SET status = ? WHERE transaction_id = ?", [status, transactionId]);
    } finally {
      await connection.end();
    }
  };
  const accountOf = async (customerId: string) => (await s.client.call("getCustomer", { customerId })).creditTypes[0]?.accounts[0];

  it("the database refuses a status outside the closed set", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("hold");
    await s.client.call("freeze", { customerId, transactionId, amount: 100n });
    await expect(
      s.app.database.pool.query("UPDATE transactions SET status = 'BOGUS' WHERE transaction_id = ?", [transactionId]),
    ).rejects.toThrow(/transactions_status_valid/);
    await expect(
      s.app.database.pool.query(
        "INSERT INTO ledger_entries (project_id, customer_pk, account_id, operation, amount, credit_type, source, metadata, created_at, sequence, balance_total, balance_used, balance_frozen) VALUES (1, 1, 1, 'BOGUS', 1, 'x', 'x', '{}', NOW(), 999999, 0, 0, 0)",
      ),
    ).rejects.toThrow(/ledger_operation_valid/);
    await expect(
      s.app.database.pool.query("UPDATE transactions SET business_type = 8 WHERE transaction_id = ?", [transactionId]),
    ).rejects.toThrow(/transactions_business_type_known/);
    await expect(
      s.app.database.pool.query(
        "INSERT INTO ledger_entries (project_id, customer_pk, account_id, operation, amount, credit_type, source, metadata, created_at, sequence, balance_total, balance_used, balance_frozen, business_type) VALUES (1, 1, 1, 'DEPOSIT', 1, 'x', 'x', '{}', NOW(), 999999, 0, 0, 0, 99)",
      ),
    ).rejects.toThrow(/ledger_business_type_known/);
    await expect(
      s.app.database.pool.query(
        "INSERT INTO events (event_id, project_id, customer_id, type, payload, created_at) VALUES ('bogus-type', 1, 'c', 'ledger.bogus', '{}', NOW())",
      ),
    ).rejects.toThrow(/events_type_known/);
  });

  it("Consume of a hold whose credit types do not parse answers freeze_records_inconsistent, then works once they do", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("hold");
    await s.client.call("freeze", { customerId, transactionId, amount: 40n });
    await s.app.database.pool.query("UPDATE transactions SET credit_types = '[\"Not A Type\"]' WHERE transaction_id = ?", [transactionId]);
    const info = await expectError(s.client.call("consume", { transactionId }), "freeze_records_inconsistent");
    expect(info).toEqual({ column: "credit_types", value: '["Not A Type"]' });
    await s.app.database.pool.query("UPDATE transactions SET credit_types = '[]' WHERE transaction_id = ?", [transactionId]);
    expect((await s.client.call("consume", { transactionId })).balance).toEqual({ total: 100n, used: 40n, frozen: 0n, available: 60n });
    await expectLedgerVerifies();
  });

  it("Consume of a hold whose status reads BOGUS answers freeze_records_inconsistent and writes nothing", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("hold");
    await s.client.call("freeze", { customerId, transactionId, amount: 100n });
    await setStatus(transactionId, "BOGUS");
    const info = await expectError(s.client.call("consume", { transactionId }), "freeze_records_inconsistent");
    expect(info).toEqual({ column: "status", value: "BOGUS" });
    await expectError(s.client.call("unfreeze", { transactionId }), "freeze_records_inconsistent");
    await expectError(s.client.call("getTransaction", { transactionId }), "freeze_records_inconsistent");
    expect(await accountOf(customerId)).toMatchObject({ total: 100n, used: 0n, frozen: 100n });
    const [rows] = await s.app.database.pool.query("SELECT status FROM transactions WHERE transaction_id = ?", [transactionId]);
    expect(rows).toEqual([{ status: "BOGUS" }]);

    await setStatus(transactionId, "FROZEN");
    const consumed = await s.client.call("consume", { transactionId });
    expect(consumed.balance).toEqual({ total: 100n, used: 100n, frozen: 0n, available: 0n });
    await expectLedgerVerifies();
  });

  it("a guarded update that changes no row aborts its batch before COMMIT", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("hold");
    const frozen = await s.client.call("freeze", { customerId, transactionId, amount: 30n });
    await s.client.call("consume", { transactionId });
    const hold = await findTransaction(s.app.database.db, 1n, transactionId);
    const accountId = BigInt(frozen.details[0]?.accountId ?? "0");
    // The settlement's own statements, replayed on a hold that is no longer FROZEN: its guarded
    // UPDATE matches no row, so the account change sent before it in the batch must not commit.
    const settlement = {
      status: "UNFROZEN",
      consumedAmount: 0n,
      returnedAmount: 30n,
      overageAmount: 0n,
      automatic: false,
      nowMs: s.clock.now(),
    } as const;
    const failure = await runTransaction(s.app.database, (tx) =>
      tx.run(
        [
          ...writeSetSql([{ kind: "deltas", deltas: [{ accountId, used: 0n, frozen: 1n }] }]),
          ...writeSetSql([{ kind: "settle", holdPk: hold?.pk ?? 0n, settlement }]),
        ],
        { commit: true },
      ),
    ).catch((error: unknown) => error);
    expect(isRowCountGuardFailure(failure)).toBe(true);
    expect(await accountOf(customerId)).toMatchObject({ total: 100n, used: 30n, frozen: 0n, available: 70n });
    expect((await s.client.call("getTransaction", { transactionId })).consumedAmount).toBe(30n);
    await expectLedgerVerifies();
  });

  it("a guard carried by the next UPDATE aborts the batch when the count is wrong, and passes when it is right", async () => {
    const customerId = uid("cust");
    const deposited = await s.client.call("deposit", { customerId, amount: 100n });
    const accountId = BigInt(deposited.account?.id ?? "0");
    const labelled = "carried-guard";
    // The carrier stands for the customers' ledger UPDATE (list-apply.ts): it changes a label.
    const carrier = (guard: SQL | null) =>
      sql`UPDATE customers SET name = ${labelled} WHERE project_id = 1 AND customer_id = ${customerId}${guard ? sql` AND ${guard}` : sql``}`;
    const batch = (deltas: { accountId: bigint; used: bigint; frozen: bigint }[]) =>
      runTransaction(s.app.database, (tx) => tx.run(writeSetSql([{ kind: "deltas", deltas }], carrier), { commit: true })).catch(
        (error: unknown) => error,
      );
    const statements = writeSetSql([{ kind: "deltas", deltas: [{ accountId, used: 0n, frozen: 1n }] }], carrier);
    expect(statements).toHaveLength(2);

    // Two accounts planned, one exists: the UPDATE changes one row, the carrier fails the batch.
    const failure = await batch([
      { accountId, used: 0n, frozen: 1n },
      { accountId: accountId + 1_000_000n, used: 0n, frozen: 1n },
    ]);
    expect(isRowCountGuardFailure(failure)).toBe(true);
    expect(await accountOf(customerId)).toMatchObject({ total: 100n, used: 0n, frozen: 0n, available: 100n });
    expect((await s.client.call("getCustomer", { customerId })).name).toBe("");

    await batch([{ accountId, used: 0n, frozen: 1n }]);
    expect(await accountOf(customerId)).toMatchObject({ total: 100n, used: 0n, frozen: 1n, available: 99n });
    expect((await s.client.call("getCustomer", { customerId })).name).toBe(labelled);
  });
});
