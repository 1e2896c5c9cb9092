import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OperationType } from "../../gen/velobase/billing/v1/billing.js";
import { recordExpiries } from "../../src/operations/expiry.js";
import { verifyLedger } from "../../src/operations/verify.js";
import type { ServiceError } from "@grpc/grpc-js";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { expectError, type TestClient } from "../support/client.js";
import { DAY, SECOND, ts, uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Refund and VoidDeposit over gRPC against the real server and database: where the credits go
// back, what expires, replays and conflicts, races with other writes and with the sweeper.

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

/** The catalogue code a call failed with, or "ok". */
async function codeOf(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return "ok";
  } catch (error) {
    return decodeStatusDetails((error as ServiceError).metadata).detail?.code ?? String(error);
  }
}

const verified = async () => expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);

/** Three accounts: expiring in 10 days, in 20 days, never; 100 each. Their ids in that order. */
async function threeAccounts(client: TestClient, customerId: string): Promise<[string, string, string]> {
  const ids: string[] = [];
  for (const expiresAt of [ts(s.clock.now() + 10 * DAY), ts(s.clock.now() + 20 * DAY), undefined]) {
    const d = await client.call("deposit", { customerId, amount: 100n, ...(expiresAt ? { expiresAt } : {}) });
    ids.push(d.account?.id ?? "");
  }
  return ids as [string, string, string];
}

const detailsOf = (r: { refundDetails: { accountId: string; amount: bigint; expired: boolean }[] }) =>
  r.refundDetails.map((d) => [d.accountId, d.amount, d.expired]);

describe("Refund", () => {
  it("gives a Deduct over three accounts back whole, latest-expiring first, keeping each account's expiry", async () => {
    const customerId = uid("cust");
    const [soon, later, never] = await threeAccounts(s.client, customerId);
    const transactionId = uid("tx");
    const deducted = await s.client.call("deduct", { customerId, transactionId, amount: 250n });
    expect(deducted.details.map((d) => [d.accountId, d.amount])).toEqual([
      [soon, 100n],
      [later, 100n],
      [never, 50n],
    ]);
    const refundId = uid("refund");
    const r = await s.client.call("refund", { transactionId, refundId, reason: "goodwill", metadata: { ticket: "T-1" } });
    expect(r).toMatchObject({
      refundId,
      transactionId,
      refundedAmount: 250n,
      restoredAmount: 250n,
      expiredAmount: 0n,
      balance: { total: 300n, used: 0n, frozen: 0n, available: 300n },
      isIdempotentReplay: false,
    });
    expect(detailsOf(r)).toEqual([
      [never, 50n, false],
      [later, 100n, false],
      [soon, 100n, false],
    ]);
    const c = await s.client.call("getCustomer", { customerId });
    expect(c.creditTypes[0]?.accounts.map((a) => [a.id, a.used, a.expiresAt?.seconds])).toEqual([
      [soon, 0n, BigInt((s.clock.now() + 10 * DAY) / 1000)],
      [later, 0n, BigInt((s.clock.now() + 20 * DAY) / 1000)],
      [never, 0n, undefined],
    ]);
    expect((await s.client.call("getTransaction", { transactionId })).refundedAmount).toBe(250n);
    const refunds = await s.client.call("listLedgerEntries", { customerId, operationTypes: [OperationType.OPERATION_TYPE_REFUND] });
    expect(
      refunds.entries.map((e) => [e.accountId, e.amount, e.reversesTransactionId, e.transactionId, e.idempotencyKey, e.description]),
    ).toEqual([
      [soon, 100n, transactionId, transactionId, refundId, "goodwill"],
      [later, 100n, transactionId, transactionId, refundId, "goodwill"],
      [never, 50n, transactionId, transactionId, refundId, "goodwill"],
    ]);
    expect(refunds.entries[0]?.metadata).toEqual({ ticket: "T-1" });
    const filtered = await s.client.call("listLedgerEntries", { customerId, reversesTransactionId: transactionId });
    expect(filtered.entries).toHaveLength(3);
    await expectError(s.client.call("refund", { transactionId, refundId: uid("refund") }), "transaction_not_refundable");
    await verified();
  });

  it("gives it back in three partial steps, then refuses more than is left", async () => {
    const customerId = uid("cust");
    const [soon, later, never] = await threeAccounts(s.client, customerId);
    const transactionId = uid("tx");
    await s.client.call("deduct", { customerId, transactionId, amount: 250n });
    const step = (amount: bigint) => s.client.call("refund", { transactionId, refundId: uid("refund"), amount });
    expect(detailsOf(await step(30n))).toEqual([[never, 30n, false]]);
    expect(detailsOf(await step(100n))).toEqual([
      [never, 20n, false],
      [later, 80n, false],
    ]);
    const last = await step(120n);
    expect(detailsOf(last)).toEqual([
      [later, 20n, false],
      [soon, 100n, false],
    ]);
    expect(last.balance).toEqual({ total: 300n, used: 0n, frozen: 0n, available: 300n });
    expect(await expectError(step(1n), "refund_exceeds_refundable")).toEqual({ requested: "1", refundable: "0" });
    expect((await s.client.call("getTransaction", { transactionId })).refundedAmount).toBe(250n);
    await verified();
  });

  it("refuses more than is refundable, naming both amounts", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("tx");
    await s.client.call("deduct", { customerId, transactionId, amount: 40n });
    await s.client.call("refund", { transactionId, refundId: uid("refund"), amount: 15n });
    const facts = await expectError(
      s.client.call("refund", { transactionId, refundId: uid("refund"), amount: 26n }),
      "refund_exceeds_refundable",
    );
    expect(facts).toEqual({ requested: "26", refundable: "25" });
    await expectError(s.client.call("refund", { transactionId, refundId: uid("refund"), amount: 0n }), "amount_must_be_positive");
  });

  it("returns credits of an account the sweeper already recorded as expired, and expires them at once", async () => {
    const customerId = uid("cust");
    const soon = await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(s.clock.now() + 10 * SECOND) });
    const never = await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("tx");
    await s.client.call("deduct", { customerId, transactionId, amount: 150n });
    s.clock.advance(20 * SECOND);
    await recordExpiries(s.app.context);
    const r = await s.client.call("refund", { transactionId, refundId: uid("refund") });
    expect(r).toMatchObject({ refundedAmount: 150n, restoredAmount: 50n, expiredAmount: 100n });
    expect(detailsOf(r)).toEqual([
      [never.account?.id, 50n, false],
      [soon.account?.id, 100n, true],
    ]);
    expect(r.balance).toEqual({ total: 100n, used: 0n, frozen: 0n, available: 100n });
    await recordExpiries(s.app.context);
    const expiries = await s.client.call("listLedgerEntries", { customerId, operationTypes: [OperationType.OPERATION_TYPE_EXPIRE] });
    // Newest first: the refund's EXPIRE of what it returned, after the sweeper's record of nothing left.
    expect(expiries.entries.map((e) => [e.accountId, e.amount, e.transactionId])).toEqual([
      [soon.account?.id, 100n, transactionId],
      [soon.account?.id, 0n, ""],
    ]);
    await verified();
  });

  it("returns credits of an account past its expiry but not yet recorded for the sweeper to expire, once", async () => {
    const customerId = uid("cust");
    const soon = await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(s.clock.now() + 10 * SECOND) });
    await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("tx");
    await s.client.call("deduct", { customerId, transactionId, amount: 150n });
    s.clock.advance(20 * SECOND);
    const r = await s.client.call("refund", { transactionId, refundId: uid("refund"), amount: 120n });
    expect(r).toMatchObject({ refundedAmount: 120n, restoredAmount: 50n, expiredAmount: 70n });
    const none = await s.client.call("listLedgerEntries", { customerId, operationTypes: [OperationType.OPERATION_TYPE_EXPIRE] });
    expect(none.entries).toEqual([]);
    await recordExpiries(s.app.context);
    await recordExpiries(s.app.context);
    const expiries = await s.client.call("listLedgerEntries", { customerId, operationTypes: [OperationType.OPERATION_TYPE_EXPIRE] });
    expect(expiries.entries.map((e) => [e.accountId, e.amount, e.transactionId])).toEqual([[soon.account?.id, 70n, ""]]);
    await verified();
  });

  it("refunds a consume's overage to the accounts it was charged to", async () => {
    const customerId = uid("cust");
    const soon = await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(s.clock.now() + 10 * DAY) });
    const never = await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("hold");
    await s.client.call("freeze", { customerId, transactionId, amount: 50n });
    await expectError(s.client.call("refund", { transactionId, refundId: uid("refund") }), "transaction_not_refundable");
    const consumed = await s.client.call("consume", { transactionId, actualAmount: 120n, allowOverage: true });
    expect(consumed.details.map((d) => [d.accountId, d.amount])).toEqual([
      [soon.account?.id, 50n],
      [soon.account?.id, 50n],
      [never.account?.id, 20n],
    ]);
    const first = await s.client.call("refund", { transactionId, refundId: uid("refund"), amount: 30n });
    expect(detailsOf(first)).toEqual([
      [never.account?.id, 20n, false],
      [soon.account?.id, 10n, false],
    ]);
    const rest = await s.client.call("refund", { transactionId, refundId: uid("refund") });
    expect(rest).toMatchObject({ refundedAmount: 90n, balance: { total: 200n, used: 0n, frozen: 0n, available: 200n } });
    expect(detailsOf(rest)).toEqual([[soon.account?.id, 90n, false]]);
    expect((await s.client.call("getTransaction", { transactionId })).refundedAmount).toBe(120n);
    await verified();
  });

  it("refuses a hold unfrozen, and a consume that charged nothing", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const unfrozen = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: unfrozen, amount: 50n });
    await s.client.call("unfreeze", { transactionId: unfrozen });
    await expectError(s.client.call("refund", { transactionId: unfrozen, refundId: uid("refund") }), "transaction_not_refundable");
    const free = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: free, amount: 50n });
    await s.client.call("consume", { transactionId: free, actualAmount: 0n });
    await expectError(s.client.call("refund", { transactionId: free, refundId: uid("refund") }), "transaction_not_refundable");
    expect(
      await expectError(s.client.call("refund", { transactionId: free, refundId: uid("refund"), amount: 1n }), "refund_exceeds_refundable"),
    ).toEqual({
      requested: "1",
      refundable: "0",
    });
  });

  it("replays the same refund, and refuses its key for another request", async () => {
    const customerId = uid("cust");
    const other = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    await s.client.call("deposit", { customerId: other, amount: 100n });
    const transactionId = uid("tx");
    const otherTx = uid("tx");
    await s.client.call("deduct", { customerId, transactionId, amount: 60n });
    await s.client.call("deduct", { customerId: other, transactionId: otherTx, amount: 60n });
    const refundId = uid("refund");
    const request = { transactionId, refundId, amount: 20n, customerId, reason: "r" };
    const first = await s.client.call("refund", request);
    await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 10n });
    const again = await s.client.call("refund", request);
    expect(again).toEqual({ ...first, isIdempotentReplay: true });
    await expectError(s.client.call("refund", { ...request, amount: 21n }), "idempotency_conflict");
    await expectError(s.client.call("refund", { ...request, reason: "other" }), "idempotency_conflict");
    await expectError(s.client.call("refund", { transactionId: otherTx, refundId }), "transaction_conflict");
    await expectError(s.client.call("refund", { transactionId, refundId: uid("refund"), customerId: other }), "customer_scope_mismatch");
    await expectError(s.client.call("refund", { transactionId: uid("unknown"), refundId: uid("refund") }), "transaction_not_found");
    expect((await s.client.call("getTransaction", { transactionId })).refundedAmount).toBe(20n);
    await verified();
  });

  it("32 concurrent refunds of one charge never give back more than it took", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 1000n });
    const transactionId = uid("tx");
    await s.client.call("deduct", { customerId, transactionId, amount: 100n });
    const outcomes = await Promise.all(
      Array.from({ length: 32 }, () => codeOf(() => s.client.call("refund", { transactionId, refundId: uid("refund"), amount: 10n }))),
    );
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(10);
    expect(outcomes.filter((o) => o === "refund_exceeds_refundable")).toHaveLength(22);
    expect((await s.client.call("getTransaction", { transactionId })).refundedAmount).toBe(100n);
    expect((await s.client.call("getCustomer", { customerId })).balance).toEqual({ total: 1000n, used: 0n, frozen: 0n, available: 1000n });
    await verified();
  });

  it("racing the expiry sweep of the same account, expires what it returns exactly once", async () => {
    for (let round = 0; round < 8; round++) {
      const customerId = uid("cust");
      const soon = await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(s.clock.now() + 10 * SECOND) });
      const transactionId = uid("tx");
      await s.client.call("deduct", { customerId, transactionId, amount: 60n });
      s.clock.advance(20 * SECOND);
      const [refunded] = await Promise.all([
        s.client.call("refund", { transactionId, refundId: uid("refund") }),
        recordExpiries(s.app.context),
      ]);
      expect(refunded).toMatchObject({ refundedAmount: 60n, restoredAmount: 0n, expiredAmount: 60n });
      await recordExpiries(s.app.context);
      const expiries = await s.client.call("listLedgerEntries", { customerId, operationTypes: [OperationType.OPERATION_TYPE_EXPIRE] });
      expect(expiries.entries.reduce((sum, e) => sum + e.amount, 0n)).toBe(100n);
      expect(expiries.entries.every((e) => e.accountId === soon.account?.id)).toBe(true);
    }
    await verified();
  });

  it("runs in a Batch after the Deduct it refunds, and replays there", async () => {
    const customerId = uid("cust");
    const transactionId = uid("tx");
    const refundId = uid("refund");
    const operations = [
      { operation: { $case: "deposit" as const, value: { customerId, amount: 100n, idempotencyKey: uid("dep") } } },
      { operation: { $case: "deduct" as const, value: { customerId, transactionId, amount: 70n } } },
      { operation: { $case: "refund" as const, value: { transactionId, refundId, amount: 30n } } },
    ];
    const first = await s.client.call("batch", { operations, atomic: true });
    const refunded = first.results[2]?.result;
    expect(refunded?.$case === "refund" && refunded.value).toMatchObject({ refundedAmount: 30n, balance: { used: 40n, available: 60n } });
    const again = await s.client.call("batch", { operations, atomic: true });
    const replayed = again.results[2]?.result;
    expect(replayed?.$case === "refund" && replayed.value.isIdempotentReplay).toBe(true);
    await verified();
  });
});

describe("Batch", () => {
  it("voids and refunds beside other writes, each refusal its own result with its facts", async () => {
    const customerId = uid("cust");
    const d = await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("tx");
    await s.client.call("deduct", { customerId, transactionId, amount: 30n });
    const r = await s.client.call("batch", {
      atomic: false,
      operations: [
        { operation: { $case: "voidDeposit", value: { customerId, recordId: d.ledgerEntryId, voidId: uid("void"), amount: 20n } } },
        { operation: { $case: "refund", value: { transactionId, refundId: uid("refund"), amount: 31n } } },
        { operation: { $case: "refund", value: { transactionId, refundId: uid("refund"), amount: 30n } } },
        { operation: { $case: "voidDeposit", value: { customerId, recordId: d.ledgerEntryId, voidId: uid("void") } } },
      ],
    });
    const [voided, refused, refunded, rest] = r.results;
    expect(voided?.result?.$case === "voidDeposit" && voided.result.value.voidedAmount).toBe(20n);
    expect(refused?.result?.$case === "error" && refused.result.value.code).toBe("refund_exceeds_refundable");
    expect(refused?.errorInfo?.metadata).toEqual({ requested: "31", refundable: "30" });
    expect(refunded?.result?.$case === "refund" && refunded.result.value.balance).toEqual({
      total: 80n,
      used: 0n,
      frozen: 0n,
      available: 80n,
    });
    // What the refund gave back is available again, and so voidable (never more than the deposit added less the first void).
    expect(rest?.result?.$case === "voidDeposit" && rest.result.value).toMatchObject({
      voidedAmount: 80n,
      balance: { total: 0n, used: 0n, frozen: 0n, available: 0n },
    });
    await verified();
  });
});

describe("VoidDeposit", () => {
  it("removes what a partly used deposit still has available, never more", async () => {
    const customerId = uid("cust");
    const d = await s.client.call("deposit", { customerId, amount: 100n });
    await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 30n });
    await s.client.call("freeze", { customerId, transactionId: uid("hold"), amount: 20n });
    const voidId = uid("void");
    const v = await s.client.call("voidDeposit", { customerId, recordId: d.ledgerEntryId, voidId });
    expect(v).toMatchObject({
      voidId,
      recordId: d.ledgerEntryId,
      voidedAmount: 50n,
      balance: { total: 50n, used: 30n, frozen: 20n, available: 0n },
      isIdempotentReplay: false,
    });
    await expectError(s.client.call("voidDeposit", { customerId, recordId: d.ledgerEntryId, voidId: uid("void") }), "deposit_not_voidable");
    const voids = await s.client.call("listLedgerEntries", { customerId, reversesRecordId: d.ledgerEntryId });
    expect(voids.entries.map((e) => [e.operation, e.amount, e.reversesRecordId, e.idempotencyKey])).toEqual([
      [OperationType.OPERATION_TYPE_VOID, 50n, d.ledgerEntryId, voidId],
    ]);
    await verified();
  });

  it("voids in parts, each at most what is left of that deposit", async () => {
    const customerId = uid("cust");
    const first = await s.client.call("deposit", { customerId, amount: 100n });
    const second = await s.client.call("deposit", { customerId, amount: 100n });
    expect(second.account?.id).toBe(first.account?.id);
    const voidOf = (recordId: string, amount?: bigint) =>
      s.client.call("voidDeposit", { customerId, recordId, voidId: uid("void"), ...(amount === undefined ? {} : { amount }) });
    expect((await voidOf(first.ledgerEntryId, 60n)).voidedAmount).toBe(60n);
    expect(await expectError(voidOf(first.ledgerEntryId, 41n), "deposit_not_voidable")).toEqual({
      record_id: first.ledgerEntryId,
      requested: "41",
      voidable: "40",
    });
    const rest = await voidOf(first.ledgerEntryId);
    expect(rest).toMatchObject({ voidedAmount: 40n, balance: { total: 100n, available: 100n } });
    await expectError(voidOf(first.ledgerEntryId), "deposit_not_voidable");
    expect((await voidOf(second.ledgerEntryId)).voidedAmount).toBe(100n);
    await verified();
  });

  it("does not know another customer's deposit, an entry that is no deposit, or an expired one's credits", async () => {
    const customerId = uid("cust");
    const other = uid("cust");
    const mine = await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(s.clock.now() + 10 * SECOND) });
    const theirs = await s.client.call("deposit", { customerId: other, amount: 100n });
    const transactionId = uid("tx");
    await s.client.call("deduct", { customerId: other, transactionId, amount: 10n });
    const deductEntry = (await s.client.call("listLedgerEntries", { customerId: other, transactionId })).entries[0]?.id ?? "";
    const voidOf = (customer: string, recordId: string) =>
      s.client.call("voidDeposit", { customerId: customer, recordId, voidId: uid("void") });
    await expectError(voidOf(customerId, theirs.ledgerEntryId), "deposit_not_found");
    await expectError(voidOf(other, deductEntry), "deposit_not_found");
    await expectError(voidOf(customerId, "999999999"), "deposit_not_found");
    await expectError(voidOf(uid("nobody"), mine.ledgerEntryId), "deposit_not_found");
    await expectError(voidOf(customerId, "x1"), "invalid_argument", undefined, { messageFree: true });
    s.clock.advance(20 * SECOND);
    await expectError(voidOf(customerId, mine.ledgerEntryId), "deposit_not_voidable");
  });

  it("racing a freeze of the same credits, one of them wins and nothing is taken twice", async () => {
    for (let round = 0; round < 10; round++) {
      const customerId = uid("cust");
      const d = await s.client.call("deposit", { customerId, amount: 100n });
      const [voided, frozen] = await Promise.all([
        codeOf(() => s.client.call("voidDeposit", { customerId, recordId: d.ledgerEntryId, voidId: uid("void"), amount: 100n })),
        codeOf(() => s.client.call("freeze", { customerId, transactionId: uid("hold"), amount: 100n })),
      ]);
      expect([voided, frozen].sort()).toContain("ok");
      expect([voided, frozen].filter((o) => o === "ok")).toHaveLength(1);
      expect(voided === "ok" ? frozen : voided).toBe(voided === "ok" ? "insufficient_balance" : "deposit_not_voidable");
      const c = await s.client.call("getCustomer", { customerId });
      expect(c.balance).toEqual(
        voided === "ok" ? { total: 0n, used: 0n, frozen: 0n, available: 0n } : { total: 100n, used: 0n, frozen: 100n, available: 0n },
      );
    }
    await verified();
  });

  it("replays the same void, and refuses its key for another request", async () => {
    const customerId = uid("cust");
    const other = uid("cust");
    const d = await s.client.call("deposit", { customerId, amount: 100n });
    const theirs = await s.client.call("deposit", { customerId: other, amount: 100n });
    const voidId = uid("void");
    const request = { customerId, recordId: d.ledgerEntryId, voidId, amount: 30n };
    const first = await s.client.call("voidDeposit", request);
    await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 10n });
    expect(await s.client.call("voidDeposit", request)).toEqual({ ...first, isIdempotentReplay: true });
    await expectError(s.client.call("voidDeposit", { ...request, amount: 31n }), "idempotency_conflict");
    await expectError(s.client.call("voidDeposit", { customerId: other, recordId: theirs.ledgerEntryId, voidId }), "transaction_conflict");
    expect((await s.client.call("getCustomer", { customerId })).balance).toEqual({ total: 70n, used: 10n, frozen: 0n, available: 60n });
    await verified();
  });
});

describe("ledger positions", () => {
  it("REFUND and VOID entries take their place in the customer's ledger, with the balance they leave", async () => {
    const customerId = uid("cust");
    const d = await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("tx");
    await s.client.call("deduct", { customerId, transactionId, amount: 40n });
    await s.client.call("refund", { transactionId, refundId: uid("refund"), amount: 15n });
    await s.client.call("voidDeposit", { customerId, recordId: d.ledgerEntryId, voidId: uid("void"), amount: 50n });
    const ledger = await s.client.call("listLedgerEntries", { customerId });
    expect(ledger.entries.map((e) => [e.operation, e.amount, e.sequence, e.balanceAfter])).toEqual([
      [OperationType.OPERATION_TYPE_VOID, 50n, 4n, { total: 50n, used: 25n, frozen: 0n, available: 25n }],
      [OperationType.OPERATION_TYPE_REFUND, 15n, 3n, { total: 100n, used: 25n, frozen: 0n, available: 75n }],
      [OperationType.OPERATION_TYPE_DEDUCT, 40n, 2n, { total: 100n, used: 40n, frozen: 0n, available: 60n }],
      [OperationType.OPERATION_TYPE_DEPOSIT, 100n, 1n, { total: 100n, used: 0n, frozen: 0n, available: 100n }],
    ]);
    await verified();
  });
});

describe("the schema's CHECKs", () => {
  it("refuse a REFUND that names no charge, a VOID that names no deposit, another entry naming either, a refund beyond its charge", async () => {
    const { pool } = s.app.database;
    const insert = (operation: string, reversesTransactionId: string | null, reversesRecordId: number | null) =>
      pool.query(
        `INSERT INTO ledger_entries (project_id, customer_pk, account_id, operation, amount, credit_type, source, metadata, created_at,
          sequence, balance_total, balance_used, balance_frozen, reverses_transaction_id, reverses_record_id)
        VALUES (1, 1, 1, ?, 1, 'x', 'x', '{}', NOW(), 999999, 0, 0, 0, ?, ?)`,
        [operation, reversesTransactionId, reversesRecordId],
      );
    await expect(insert("REFUND", null, null)).rejects.toThrow(/ledger_refund_reverses_charge/);
    await expect(insert("DEDUCT", "tx", null)).rejects.toThrow(/ledger_refund_reverses_charge/);
    await expect(insert("VOID", null, null)).rejects.toThrow(/ledger_void_reverses_deposit/);
    await expect(insert("DEPOSIT", null, 1)).rejects.toThrow(/ledger_void_reverses_deposit/);
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("tx");
    await s.client.call("deduct", { customerId, transactionId, amount: 40n });
    const refunded = (amount: number) =>
      pool.query("UPDATE transactions SET refunded_amount = ? WHERE transaction_id = ?", [amount, transactionId]);
    await expect(refunded(41)).rejects.toThrow(/transactions_refunded_within_charge/);
    await expect(refunded(-1)).rejects.toThrow(/transactions_refunded_within_charge/);
  });
});

describe("scopes and projects", () => {
  it("a read key may not refund or void; another project's key sees neither the charge nor the deposit", async () => {
    const customerId = uid("cust");
    const d = await s.client.call("deposit", { customerId, amount: 100n });
    const transactionId = uid("tx");
    await s.client.call("deduct", { customerId, transactionId, amount: 10n });
    const reader = s.clientWith((await s.createKey({ scope: "read" })).key);
    await expectError(reader.call("refund", { transactionId, refundId: uid("refund") }), "permission_denied");
    await expectError(reader.call("voidDeposit", { customerId, recordId: d.ledgerEntryId, voidId: uid("void") }), "permission_denied");
    const stranger = s.clientWith((await s.createKey({ project: await s.createProject() })).key);
    await stranger.call("deposit", { customerId, amount: 100n });
    await expectError(stranger.call("refund", { transactionId, refundId: uid("refund") }), "transaction_not_found");
    await expectError(stranger.call("voidDeposit", { customerId, recordId: d.ledgerEntryId, voidId: uid("void") }), "deposit_not_found");
    expect((await s.client.call("getTransaction", { transactionId })).refundedAmount).toBe(0n);
    expect((await s.client.call("getCustomer", { customerId })).balance?.total).toBe(100n);
  });
});
