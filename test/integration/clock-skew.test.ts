import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountStatus } from "../../gen/velobase/billing/v1/billing.js";
import { recordExpiries } from "../../src/operations/expiry.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { expectError } from "../support/client.js";
import { SECOND, ts, uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Two instances whose clocks disagree. The server's clock is the test's; the "ahead" instance is
// the same database seen through a context whose clock runs 3 s ahead, as an instance of another
// machine would (its sweeper records expiries the server's clock has not reached yet). Once an
// account's expiry is on the ledger, the instance behind must treat it as expired: spending its
// credits as well would count them twice (used and expired), and `verify` would fail.

const AHEAD_MS = 3 * SECOND;

let s: TestServer;

beforeAll(async () => {
  s = await startTestServer();
});

afterAll(async () => {
  await s?.stop();
});

/** The sweeper's expiry pass of an instance whose clock runs AHEAD_MS ahead of the server's. */
const sweepAhead = () => recordExpiries({ ...s.app.context, now: () => s.clock.now() + AHEAD_MS });

describe("an instance whose clock runs behind the one that recorded an expiry", () => {
  it("spends, freezes and voids none of the expired credits, shows them expired, and takes no deposit into them", async () => {
    const customerId = uid("behind");
    const shortExpiry = ts(s.clock.now() + 2 * SECOND);
    const short = await s.client.call("deposit", { customerId, amount: 100n, creditType: "short", expiresAt: shortExpiry });
    await s.client.call("deposit", { customerId, amount: 100n, creditType: "long" });
    expect(await sweepAhead()).toBe(1);

    // Here the short account has 1 s left; on the ledger it has expired (EXPIRE 100).
    await expectError(s.client.call("deduct", { customerId, transactionId: uid("deduct"), amount: 150n }), "insufficient_balance");
    await expectError(s.client.call("freeze", { customerId, transactionId: uid("freeze"), amount: 150n }), "insufficient_balance");
    const voided = await expectError(
      s.client.call("voidDeposit", { customerId, recordId: short.ledgerEntryId, voidId: uid("void") }),
      "deposit_not_voidable",
    );
    expect(voided.voidable).toBe("0");
    const customer = await s.client.call("getCustomer", { customerId, includeInactive: true });
    expect(customer.balance).toMatchObject({ total: 100n, used: 0n, frozen: 0n, available: 100n });
    expect(customer.creditTypes.flatMap((t) => t.accounts.map((a) => [t.creditType, a.status]))).toEqual([
      ["long", AccountStatus.ACCOUNT_STATUS_ACTIVE],
      ["short", AccountStatus.ACCOUNT_STATUS_EXPIRED],
    ]);
    // The same refusal as an expires_at in the past.
    const refused = await expectError(
      s.client.call("deposit", { customerId, amount: 5n, creditType: "short", expiresAt: shortExpiry }),
      "invalid_expires_at",
      "expires_at must be in the future.",
    );
    expect(refused.field).toBe("expires_at");
    const spent = await s.client.call("deduct", { customerId, transactionId: uid("deduct"), amount: 100n });
    expect(spent.balance).toMatchObject({ total: 100n, used: 100n, available: 0n });
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });
});

describe("a recorded expiry, read back", () => {
  it("leaves a balance as of before it as it was: as_of counts the EXPIRE entries made by then, not today's flag", async () => {
    const customerId = uid("as-of");
    await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(s.clock.now() + 10 * SECOND) });
    await s.client.call("deduct", { customerId, transactionId: uid("deduct"), amount: 30n });
    const then = s.clock.now();
    const asOfThen = async () => (await s.client.call("getCustomer", { customerId, asOf: ts(then) })).balance;
    expect(await asOfThen()).toMatchObject({ total: 100n, used: 30n, available: 70n });
    s.clock.advance(11 * SECOND);
    expect(await recordExpiries(s.app.context)).toBe(1);
    expect(await asOfThen()).toMatchObject({ total: 100n, used: 30n, available: 70n });
    const now = await s.client.call("getCustomer", { customerId, asOf: ts(s.clock.now()) });
    expect(now.balance).toMatchObject({ total: 0n, used: 0n, available: 0n });
  });

  it("counts an expiry recorded ahead of this clock in as_of, as its EXPIRE entry says", async () => {
    const customerId = uid("as-of-ahead");
    await s.client.call("deposit", { customerId, amount: 100n, creditType: "short", expiresAt: ts(s.clock.now() + 2 * SECOND) });
    await s.client.call("deposit", { customerId, amount: 100n, creditType: "long" });
    expect(await sweepAhead()).toBe(1); // its EXPIRE entry is dated 3 s ahead of this clock
    await s.client.call("deduct", { customerId, transactionId: uid("deduct"), amount: 10n }); // later in the ledger, earlier in time
    const live = await s.client.call("getCustomer", { customerId, includeInactive: true });
    const asOf = await s.client.call("getCustomer", { customerId, includeInactive: true, asOf: ts(s.clock.now()) });
    expect(asOf.balance).toMatchObject({ total: 100n, used: 10n, frozen: 0n, available: 90n });
    expect(asOf.balance).toEqual(live.balance);
    const statuses = (c: typeof live) => c.creditTypes.flatMap((t) => t.accounts.map((a) => [t.creditType, a.status]));
    expect(statuses(asOf)).toEqual([
      ["long", AccountStatus.ACCOUNT_STATUS_ACTIVE],
      ["short", AccountStatus.ACCOUNT_STATUS_EXPIRED],
    ]);
  });

  it("answers a refund into an account expired elsewhere as expired, as its entries say", async () => {
    const customerId = uid("refund");
    await s.client.call("deposit", { customerId, amount: 100n, creditType: "short", expiresAt: ts(s.clock.now() + 2 * SECOND) });
    await s.client.call("deposit", { customerId, amount: 100n, creditType: "long" });
    const charge = uid("charge");
    await s.client.call("deduct", { customerId, transactionId: charge, amount: 50n }); // the short account first
    expect(await sweepAhead()).toBe(1); // EXPIRE 50
    const refund = await s.client.call("refund", { transactionId: charge, refundId: uid("refund"), amount: 20n });
    expect([refund.restoredAmount, refund.expiredAmount, refund.refundDetails.map((d) => [d.creditType, d.expired])]).toEqual([
      0n,
      20n,
      [["short", true]],
    ]);
    expect(refund.balance).toMatchObject({ total: 100n, used: 0n, available: 100n });
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });
});
