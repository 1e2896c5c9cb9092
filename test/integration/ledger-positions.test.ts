import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordExpiries } from "../../src/operations/expiry.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { expectError } from "../support/client.js";
import { DAY, SECOND, ts, uid } from "../support/fixtures.js";
import { httpClientFor, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Every entry's sequence and balance_after, over both transports, and balances as of a past time.
let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

const balance = (total: bigint, used: bigint, frozen: bigint) => ({ total, used, frozen, available: total - used - frozen });

async function ledgerOf(customerId: string) {
  const { entries } = await s.client.call("listLedgerEntries", { customerId, pageSize: 100 });
  return entries.map((e) => ({ sequence: e.sequence, operation: e.operation, amount: e.amount, balanceAfter: e.balanceAfter })).reverse();
}

describe("ledger positions", () => {
  it("numbers each customer's entries 1, 2, … and gives each the balance it leaves, as GetCustomer answers it", async () => {
    const customerId = uid("pos");
    await s.client.call("deposit", { customerId, amount: 100n });
    await s.client.call("deposit", { customerId, amount: 50n, source: "promo", expiresAt: ts(s.clock.now() + DAY) });
    await s.client.call("deduct", { customerId, transactionId: uid("d"), amount: 70n });
    const hold = uid("h");
    await s.client.call("freeze", { customerId, transactionId: hold, amount: 60n });
    await s.client.call("consume", { transactionId: hold, actualAmount: 25n });
    const ledger = await ledgerOf(customerId);
    expect(ledger.map((e) => [e.sequence, e.balanceAfter])).toEqual([
      [1n, balance(100n, 0n, 0n)],
      [2n, balance(150n, 0n, 0n)],
      // The deduct takes the expiring credits first: 50 from promo, 20 from default.
      [3n, balance(150n, 50n, 0n)],
      [4n, balance(150n, 70n, 0n)],
      [5n, balance(150n, 70n, 60n)],
      [6n, balance(150n, 95n, 35n)],
      [7n, balance(150n, 95n, 0n)],
    ]);
    expect((await s.client.call("getCustomer", { customerId })).balance).toEqual(balance(150n, 95n, 0n));
    const http = await httpClientFor(s);
    const page = ok<{ items: Array<{ sequence: number; balance_after: unknown }> }>(await http.get(`/v1/customers/${customerId}/ledger`));
    expect(page.items[0]).toMatchObject({ sequence: 7, balance_after: { total: 150, used: 95, frozen: 0, available: 55 } });
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("removes an expired account from balance_after with its EXPIRE entry, even when nothing was left in it", async () => {
    const customerId = uid("pos");
    await s.client.call("deposit", { customerId, amount: 30n, source: "short", expiresAt: ts(s.clock.now() + 10 * SECOND) });
    await s.client.call("deposit", { customerId, amount: 20n, source: "used", expiresAt: ts(s.clock.now() + 5 * SECOND) });
    await s.client.call("deduct", { customerId, transactionId: uid("d"), amount: 20n });
    s.clock.advance(11 * SECOND);
    await recordExpiries(s.app.context);
    const ledger = await ledgerOf(customerId);
    expect(ledger.map((e) => [e.sequence, e.amount, e.balanceAfter])).toEqual([
      [1n, 30n, balance(30n, 0n, 0n)],
      [2n, 20n, balance(50n, 0n, 0n)],
      [3n, 20n, balance(50n, 20n, 0n)],
      [4n, 0n, balance(30n, 0n, 0n)],
      [5n, 30n, balance(0n, 0n, 0n)],
    ]);
    expect((await s.client.call("getCustomer", { customerId })).balance).toEqual(balance(0n, 0n, 0n));
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("refuses a write when the customer's position is not its ledger's: the entries' unique sequence guards it, nothing is written", async () => {
    const customerId = uid("pos-guard");
    await s.client.call("deposit", { customerId, amount: 100n });
    await s.client.call("deduct", { customerId, transactionId: uid("d"), amount: 10n });
    // The row says 1 while the ledger holds 2 entries: the next entry would repeat sequence 2.
    await s.app.database.pool.query("UPDATE customers SET ledger_sequence = 1 WHERE project_id = 1 AND customer_id = ?", [customerId]);
    const refused = uid("d");
    await expectError(s.client.call("deduct", { customerId, transactionId: refused, amount: 5n }), "server_error", undefined, {
      messageFree: true,
    });
    await expectError(s.client.call("getTransaction", { transactionId: refused }), "transaction_not_found", undefined, {
      messageFree: true,
    });
    const customer = await s.client.call("getCustomer", { customerId });
    expect(customer.balance).toEqual(balance(100n, 10n, 0n));
    expect((await ledgerOf(customerId)).map((e) => e.sequence)).toEqual([1n, 2n]);
  });

  it("answers GetCustomer as of a past time from the entries, before, between and after writes", async () => {
    const customerId = uid("asof");
    const before = s.clock.now();
    s.clock.advance(SECOND);
    await s.client.call("deposit", { customerId, amount: 100n });
    s.clock.advance(SECOND);
    const between = s.clock.now();
    s.clock.advance(SECOND);
    await s.client.call("deduct", { customerId, transactionId: uid("d"), amount: 30n });
    s.clock.advance(SECOND);
    await expectError(s.client.call("getCustomer", { customerId, asOf: ts(before) }), "customer_not_found");
    expect((await s.client.call("getCustomer", { customerId, asOf: ts(between) })).balance).toEqual(balance(100n, 0n, 0n));
    expect((await s.client.call("getCustomer", { customerId, asOf: ts(s.clock.now()) })).balance).toEqual(balance(100n, 30n, 0n));
    const http = await httpClientFor(s);
    const then = ok<{ wallets: unknown }>(await http.get(`/v1/customers/${customerId}?as_of=${new Date(between).toISOString()}`));
    expect(then.wallets).toMatchObject({ default: { total: 100, used: 0, frozen: 0, available: 100 } });
  });

  it("answers as of a time between two entries whose timestamps run against the ledger's order with a state the ledger had", async () => {
    // Two instances whose clocks disagree, or one whose clock stepped back: an entry can be made
    // later in the ledger's order than another yet carry an earlier time. Summing the entries made
    // by a time would then count the deduct without the deposit it spent (available -29).
    const customerId = uid("skew");
    await s.client.call("deposit", { customerId, amount: 1n });
    const start = s.clock.now();
    s.clock.set(start + 100 * SECOND);
    await s.client.call("deposit", { customerId, amount: 100n });
    s.clock.set(start + 50 * SECOND);
    await s.client.call("deduct", { customerId, transactionId: uid("d"), amount: 30n });
    expect((await ledgerOf(customerId)).map((e) => e.sequence)).toEqual([1n, 2n, 3n]);
    // The last entry made by then is the deduct: the state right after it, the deposit before it included.
    const at = (offset: number) => s.client.call("getCustomer", { customerId, asOf: ts(start + offset * SECOND) });
    expect((await at(60)).balance).toEqual(balance(101n, 30n, 0n));
    // Before the deduct was made, only the first deposit had been.
    expect((await at(40)).balance).toEqual(balance(1n, 0n, 0n));
    s.clock.set(start + 200 * SECOND);
  });
});
