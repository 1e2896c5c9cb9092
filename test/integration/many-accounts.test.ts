import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OperationType } from "../../gen/velobase/billing/v1/billing.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { NO_EXPIRY_MS, NO_START_MS } from "../../src/domain/limits.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Issue 9, finding 3: one call that touches thousands of accounts, with the largest metadata.

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

/** Gives the customer `count` accounts of 1 credit each (one per source), over concurrent RPCs. */
async function seedAccounts(customerId: string, count: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await s.client.call("deposit", { customerId, amount: 1n, source: `s${i}` });
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

/**
 * The same as seedAccounts, written straight to the tables as Deposit writes them (account rows
 * and their DEPOSIT entries, so verify still holds): every deposit sums the customer's balance,
 * so 20,000 deposits into one customer cost O(n²), minutes on a shared machine. The calls under
 * test (Deduct, Freeze, Unfreeze) then run over gRPC as usual.
 */
async function seedAccountsDirectly(customerId: string, count: number): Promise<void> {
  await s.client.call("deposit", { customerId, amount: 1n, source: "s0" });
  const pool = s.app.database.pool;
  const [rows] = await pool.query("SELECT id, project_id FROM customers WHERE customer_id = ?", [customerId]);
  const customer = (rows as Array<{ id: string; project_id: string }>)[0];
  if (!customer) throw new Error("customer not created");
  const createdAt = new Date(s.clock.now());
  for (let start = 1; start < count; start += 2000) {
    const sources = Array.from({ length: Math.min(2000, count - start) }, (_, i) => `s${start + i}`);
    await pool.query(
      `INSERT INTO accounts (project_id, customer_pk, credit_type, source, starts_at_ms, expires_at_ms, total, created_at) VALUES ${sources.map(() => "(?, ?, 'default', ?, ?, ?, 1, ?)").join(", ")}`,
      sources.flatMap((source) => [customer.project_id, customer.id, source, NO_START_MS, NO_EXPIRY_MS, createdAt]),
    );
  }
  // Each DEPOSIT entry takes the next place in the customer's ledger (after the first deposit's,
  // sequence 1) and adds its 1 credit to balance_after; the customer row then carries the last.
  await pool.query(
    `INSERT INTO ledger_entries (project_id, customer_pk, account_id, operation, amount, credit_type, source, metadata, created_at,
        sequence, balance_total, balance_used, balance_frozen)
      SELECT project_id, customer_pk, id, 'DEPOSIT', total, credit_type, source, '{}', created_at,
        1 + ROW_NUMBER() OVER (ORDER BY id), 1 + ROW_NUMBER() OVER (ORDER BY id), 0, 0
      FROM accounts WHERE customer_pk = ? AND source <> 's0'`,
    [customer.id],
  );
  await pool.query("UPDATE customers SET ledger_sequence = ?, ledger_total = ? WHERE id = ?", [count, count, customer.id]);
}

const largestMetadata = (): Record<string, string> =>
  Object.fromEntries(Array.from({ length: 32 }, (_, i) => [String(i).padStart(2, "0") + "k".repeat(62), "v".repeat(1024)]));

describe("finding 3: a call touching many accounts", () => {
  it("deducts 600 from 600 accounts with the largest metadata and description, stored once", async () => {
    const customerId = uid("cust");
    await seedAccounts(customerId, 600);
    const metadata = largestMetadata();
    const description = "d".repeat(1024);
    const transactionId = uid("tx");
    const r = await s.client.call("deduct", { customerId, transactionId, amount: 600n, metadata, description });
    expect(r.details).toHaveLength(600);
    expect(r.balance).toEqual({ total: 600n, used: 600n, frozen: 0n, available: 0n });
    const page = await s.client.call("listLedgerEntries", { customerId, transactionId, pageSize: 100 });
    expect(page.entries).toHaveLength(100);
    for (const e of page.entries)
      expect([e.operation, e.amount, e.description, e.metadata]).toEqual([OperationType.OPERATION_TYPE_DEDUCT, 1n, description, metadata]);
    const [stored] = await s.app.database.pool.query(
      "SELECT COUNT(*) AS entries, MAX(LENGTH(description) + LENGTH(metadata)) AS text_bytes FROM ledger_entries WHERE transaction_id = ?",
      [transactionId],
    );
    expect(stored).toEqual([{ entries: "600", text_bytes: "2" }]);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("with 20,000 accounts: deducts 12,000, freezes the other 8,000 and unfreezes them", async () => {
    const customerId = uid("cust");
    await seedAccountsDirectly(customerId, 20_000);
    const deducted = await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 12_000n });
    expect(deducted.details).toHaveLength(12_000);
    expect(deducted.balance).toEqual({ total: 20_000n, used: 12_000n, frozen: 0n, available: 8_000n });
    const holdId = uid("hold");
    const frozen = await s.client.call("freeze", { customerId, transactionId: holdId, amount: 8_000n });
    expect(frozen.details).toHaveLength(8_000);
    expect(frozen.balance).toEqual({ total: 20_000n, used: 12_000n, frozen: 8_000n, available: 0n });
    const unfrozen = await s.client.call("unfreeze", { transactionId: holdId });
    expect([unfrozen.unfrozenAmount, unfrozen.details.length]).toEqual([8_000n, 8_000]);
    expect(unfrozen.balance).toEqual({ total: 20_000n, used: 12_000n, frozen: 0n, available: 8_000n });
    const replay = await s.client.call("unfreeze", { transactionId: holdId });
    expect(replay).toEqual({ ...unfrozen, isIdempotentReplay: true });
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });
});
