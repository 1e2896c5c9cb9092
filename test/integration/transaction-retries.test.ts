import mysql, { type Connection, type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLedger } from "../../src/operations/verify.js";
import { type RetryReason, TRANSACTION_ATTEMPTS_MAX } from "../../src/store/run-transaction.js";
import { expectError, TestClient } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { lockingReadWaits, waitFor } from "../support/waiting.js";

// Deadlocks (1213) and lock-wait timeouts (1205) provoked for real: a raw connection holds the
// rows a Deduct needs, and the retries are read from billing_db_transaction_retries_total.
let s: TestServer;
let other: Connection;

/** A server whose pool waits `lockWaitS` for a row lock, and a raw connection to its database. */
function withServer(lockWaitS: number): void {
  beforeAll(async () => {
    s = await startTestServer({ DB_LOCK_WAIT_TIMEOUT_S: String(lockWaitS) });
    other = await mysql.createConnection(s.databaseUrl);
    await other.query("CREATE TABLE retry_ballast (id INT PRIMARY KEY)");
  });

  afterAll(async () => {
    await other?.end();
    await s?.stop();
  });
}

async function retries(reason: RetryReason): Promise<number> {
  const { values } = await s.app.metrics.retries.get();
  return values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

/**
 * Whether a connection of this test's database is inside the statement that locks a customer's
 * first spendable accounts (`SELECT a.customer_pk AS a_customer_pk, … FOR UPDATE`), after its
 * customer's. Only the Deduct runs one, and nothing else can hold it there but a lock. (MariaDB's INNODB_TRX does not list a
 * transaction that has written nothing.)
 */
async function deductWaitsForAccounts(): Promise<boolean> {
  const [rows] = await other.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
     WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND INFO LIKE 'SELECT a.customer_pk AS a_customer_pk,%' AND INFO LIKE '%FOR UPDATE'`,
  );
  return Number(rows[0]?.n ?? 0) === 1;
}

async function customerWithCredits(amount: bigint): Promise<{ customerId: string; customerPk: string; accountId: string }> {
  const customerId = uid("retry");
  const { account } = await s.client.call("deposit", { customerId, amount });
  const [rows] = await other.query<RowDataPacket[]>("SELECT id FROM customers WHERE customer_id = ?", [customerId]);
  return { customerId, customerPk: String(rows[0]?.id), accountId: account?.id ?? "" };
}

async function available(customerId: string): Promise<bigint | undefined> {
  return (await s.client.call("getCustomer", { customerId })).balance?.available;
}

describe("a lock-wait timeout (1205)", () => {
  withServer(1);

  it("is retried, and after the last attempt answers service_unavailable with nothing written", async () => {
    const { customerId, customerPk } = await customerWithCredits(100n);
    const before = await retries("lock_wait_timeout");
    await other.query("BEGIN");
    await other.query("SELECT id FROM customers WHERE id = ? FOR UPDATE", [customerPk]);
    try {
      await expectError(s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 10n }), "service_unavailable");
    } finally {
      await other.query("ROLLBACK");
    }
    expect((await retries("lock_wait_timeout")) - before).toBe(TRANSACTION_ATTEMPTS_MAX - 1);
    expect(await available(customerId)).toBe(100n);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("is retried, and the retry succeeds once the lock is released", async () => {
    const { customerId, customerPk } = await customerWithCredits(100n);
    const before = await retries("lock_wait_timeout");
    await other.query("BEGIN");
    await other.query("SELECT id FROM customers WHERE id = ? FOR UPDATE", [customerPk]);
    const deduct = s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 10n });
    deduct.catch(() => undefined); // Awaited below; a failed wait must not leave it unhandled.
    try {
      await waitFor(async () => (await retries("lock_wait_timeout")) > before, "the first retry");
    } finally {
      await other.query("ROLLBACK");
    }
    expect((await deduct).balance?.available).toBe(90n);
    expect((await retries("lock_wait_timeout")) - before).toBe(1);
  });
});

describe("a deadlock (1213)", () => {
  // Long enough that the Deduct is still waiting when the deadlock is made, even on a busy machine.
  withServer(30);

  it("rolls back the Deduct, which is retried and succeeds", async () => {
    const { customerId, customerPk, accountId } = await customerWithCredits(100n);
    const before = await retries("deadlock");
    // The other transaction writes rows first, so InnoDB picks the Deduct (which has written
    // nothing yet) as the deadlock victim.
    await other.query("BEGIN");
    await other.query(`INSERT INTO retry_ballast (id) VALUES ${Array.from({ length: 200 }, (_, i) => `(${i})`).join(",")}`);
    await other.query("SELECT id FROM accounts WHERE id = ? FOR UPDATE", [accountId]);
    // The Deduct locks the customer, then waits for the account (its spendable accounts' statement).
    const deduct = s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 10n });
    deduct.catch(() => undefined); // Awaited below; a failed setup must not leave it unhandled.
    try {
      await waitFor(deductWaitsForAccounts, "the Deduct to wait for the account");
      // Opposite order: the customer the Deduct holds. InnoDB rolls the Deduct back.
      await other.query("SELECT id FROM customers WHERE id = ? FOR UPDATE", [customerPk]);
      await waitFor(async () => (await retries("deadlock")) > before, "the retry");
    } finally {
      await other.query("ROLLBACK");
    }
    expect((await deduct).balance?.available).toBe(90n);
    expect((await retries("deadlock")) - before).toBe(1);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });
});

describe("a settlement or refund naming no customer, sent while the write it names commits", () => {
  withServer(120);

  /**
   * Transactions of this database waiting on a row lock. InnoDB refreshes what INNODB_TRX shows
   * only when it was not read for 100 ms, so a reader polling faster would never see a change.
   */
  async function lockWaits(): Promise<number> {
    await new Promise((resolve) => setTimeout(resolve, 150));
    const [rows] = await other.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
       WHERE p.DB = DATABASE() AND t.trx_state = 'LOCK WAIT'`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  for (const kind of ["consume", "unfreeze", "refund"] as const) {
    it(`${kind}: runs again once its customer can be found (prefetch_raced), never server_error`, async () => {
      const { customerId, customerPk } = await customerWithCredits(100n);
      const instance = await s.startAnotherInstance();
      const elsewhere = new TestClient(instance.port, s.apiKey);
      const transactionId = uid("raced");
      const [customer] = await other.query<RowDataPacket[]>("SELECT project_id, ledger_sequence FROM customers WHERE id = ?", [customerPk]);
      try {
        // The charge inserts its transaction row, then waits to insert its ledger entry at the
        // customer's next sequence, which this uncommitted row holds (never committed): its
        // transaction stays open with the hold (or charge) in it.
        await other.query("BEGIN");
        await other.query(
          `INSERT INTO ledger_entries (project_id, customer_pk, account_id, operation, amount, credit_type, source, metadata,
             created_at, sequence, balance_total, balance_used, balance_frozen)
           VALUES (?, ?, 0, 'DEPOSIT', 1, 'default', 'default', '{}', NOW(3), ?, 0, 0, 0)`,
          [customer[0]?.project_id, customerPk, Number(customer[0]?.ledger_sequence) + 1],
        );
        const charged = s.client.call(kind === "refund" ? "deduct" : "freeze", { customerId, transactionId, amount: 40n });
        await waitFor(async () => (await lockWaits()) === 1, "the charge to wait on its ledger entry's place");
        // Elsewhere (so no group commit queues it behind the charge): its customer lookup finds no
        // committed charge, then its lock on the charge's row waits for the charge.
        const second =
          kind === "consume"
            ? elsewhere.call("consume", { transactionId, actualAmount: 25n }).then((r) => r.balance?.available)
            : kind === "unfreeze"
              ? elsewhere.call("unfreeze", { transactionId }).then((r) => r.balance?.available)
              : elsewhere.call("refund", { transactionId, refundId: uid("refund"), amount: 10n }).then((r) => r.balance?.available);
        second.catch(() => undefined); // awaited below
        await waitFor(() => lockingReadWaits(other), "the second call to wait on the charge's row");
        const before = await retries("prefetch_raced");
        await other.query("ROLLBACK");
        expect((await charged).balance?.available).toBe(60n);
        expect(await second).toBe({ consume: 75n, unfreeze: 100n, refund: 70n }[kind]);
        expect(await retries("prefetch_raced")).toBe(before);
        const { values } = await instance.metrics.retries.get();
        expect(values.find((v) => v.labels.reason === "prefetch_raced")?.value).toBe(1);
        expect(await available(customerId)).toBe({ consume: 75n, unfreeze: 100n, refund: 70n }[kind]);
        expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
      } finally {
        elsewhere.close();
        await instance.stop();
      }
    });
  }
});
