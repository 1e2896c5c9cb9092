import { describe, expect, it } from "vitest";
import { account } from "../support/accounts.js";
import type { StoredOutcome } from "../../src/domain/idempotency.js";
import { type Charge, planRefund, type RefundRequest, type RefundState, refundEnvelope } from "../../src/domain/plans/refund-plan.js";
import { planVoid, type VoidRequest, type VoidState, voidEnvelope } from "../../src/domain/plans/void-plan.js";
import { refundWrite, voidWrite } from "../../src/domain/plans/write-list.js";
import { codeOf } from "../support/code-of.js";

// Refund and VoidDeposit plans are pure: state + request + clock in, a decision out. No database here.

const NOW = 1_800_000_000_000;
const DAY = 86_400_000;

const balance = (total: bigint, used = 0n, frozen = 0n) => ({ total, used, frozen, available: total - used - frozen });

describe("planRefund", () => {
  const charge: Charge = {
    pk: 7n,
    transactionId: "tx",
    customerPk: 3n,
    customerId: "alice",
    kind: "DEDUCT",
    status: "DEDUCTED",
    amount: 250n,
    consumedAmount: 0n,
    refundedAmount: 0n,
    businessType: 0,
  };
  // A Deduct of 250: 100 from an account expiring in 10 days, 100 in 20 days, 50 never.
  const soon = account(1n, { expiresAtMs: NOW + 10 * DAY, used: 100n });
  const later = account(2n, { expiresAtMs: NOW + 20 * DAY, used: 100n });
  const never = account(3n, { used: 50n });
  const state = (over: Partial<RefundState> = {}): RefundState => ({
    stored: null,
    charge,
    parts: [
      { accountId: 1n, charged: 100n, refunded: 0n },
      { accountId: 2n, charged: 100n, refunded: 0n },
      { accountId: 3n, charged: 50n, refunded: 0n },
    ],
    accounts: new Map([soon, later, never].map((a) => [a.id, a])),
    expiryRecorded: new Set(),
    before: balance(300n, 250n),
    ...over,
  });
  const request: RefundRequest = {
    projectId: 1n,
    apiKeyId: null,
    refundId: "r1",
    transactionId: "tx",
    customerId: null,
    amount: null,
    reason: "",
    metadata: {},
  };
  const applied = (s: RefundState, r: RefundRequest = request, nowMs = NOW) => {
    const p = planRefund(s, refundWrite(r), nowMs);
    if (p.kind !== "apply") throw new Error(`expected apply, got ${p.kind}`);
    return p;
  };

  it("refunds everything left by default, latest-expiring first", () => {
    const p = applied(state());
    expect(p.result.details.map((d) => [d.accountId, d.amount, d.expired])).toEqual([
      [3n, 50n, false],
      [2n, 100n, false],
      [1n, 100n, false],
    ]);
    expect(p.changes.deltas).toEqual([
      { accountId: 3n, used: -50n, frozen: 0n },
      { accountId: 2n, used: -100n, frozen: 0n },
      { accountId: 1n, used: -100n, frozen: 0n },
    ]);
    expect(p.changes.entries.map((e) => [e.operation, e.accountId, e.amount])).toEqual([
      ["REFUND", 3n, 50n],
      ["REFUND", 2n, 100n],
      ["REFUND", 1n, 100n],
    ]);
    expect(p.changes.expiring).toEqual([]);
    expect(p.result).toMatchObject({ refundedAmount: 250n, restoredAmount: 250n, expiredAmount: 0n, balance: balance(300n) });
  });

  it("a partial refund takes each account at most what it gave less what earlier refunds returned", () => {
    const s = state({
      charge: { ...charge, refundedAmount: 30n },
      parts: [
        { accountId: 1n, charged: 100n, refunded: 0n },
        { accountId: 2n, charged: 100n, refunded: 0n },
        { accountId: 3n, charged: 50n, refunded: 30n },
      ],
    });
    const p = applied(s, { ...request, amount: 100n });
    expect(p.result.details.map((d) => [d.accountId, d.amount])).toEqual([
      [3n, 20n],
      [2n, 80n],
    ]);
  });

  it("refuses more than is left, an open or unfrozen hold, and nothing left without an amount", () => {
    expect(codeOf(() => planRefund(state(), refundWrite({ ...request, amount: 251n }), NOW))).toBe("refund_exceeds_refundable");
    const freeze = { ...charge, kind: "FREEZE" as const, amount: 50n };
    expect(codeOf(() => planRefund(state({ charge: { ...freeze, status: "FROZEN" } }), refundWrite(request), NOW))).toBe(
      "transaction_not_refundable",
    );
    expect(codeOf(() => planRefund(state({ charge: { ...freeze, status: "UNFROZEN" } }), refundWrite(request), NOW))).toBe(
      "transaction_not_refundable",
    );
    const whole = state({
      charge: { ...charge, refundedAmount: 250n },
      parts: [
        { accountId: 1n, charged: 100n, refunded: 100n },
        { accountId: 2n, charged: 100n, refunded: 100n },
        { accountId: 3n, charged: 50n, refunded: 50n },
      ],
    });
    expect(codeOf(() => planRefund(whole, refundWrite(request), NOW))).toBe("transaction_not_refundable");
    expect(codeOf(() => planRefund(whole, refundWrite({ ...request, amount: 1n }), NOW))).toBe("refund_exceeds_refundable");
  });

  it("an unknown charge, another customer's, a reused key", () => {
    expect(codeOf(() => planRefund(state({ charge: null, parts: [] }), refundWrite(request), NOW))).toBe("transaction_not_found");
    expect(codeOf(() => planRefund(state(), refundWrite({ ...request, customerId: "bob" }), NOW))).toBe("customer_scope_mismatch");
    const stored = (fingerprint: string, customerId = "alice"): StoredOutcome => ({
      customerId,
      requestFingerprint: fingerprint,
      response: "{}",
    });
    const same = refundEnvelope(request).requestFingerprint;
    expect(planRefund(state({ stored: stored(same) }), refundWrite(request), NOW).kind).toBe("replay");
    expect(codeOf(() => planRefund(state({ stored: stored("other") }), refundWrite(request), NOW))).toBe("idempotency_conflict");
    expect(codeOf(() => planRefund(state({ stored: stored(same, "bob") }), refundWrite(request), NOW))).toBe("transaction_conflict");
  });

  it("what goes back to an expired account is reported expired, and expires at once when its expiry is recorded", () => {
    const past = NOW + 15 * DAY;
    const p = applied(state({ expiryRecorded: new Set([1n]) }), request, past);
    expect(p.result.details.map((d) => [d.accountId, d.expired])).toEqual([
      [3n, false],
      [2n, false],
      [1n, true],
    ]);
    expect(p.result).toMatchObject({ restoredAmount: 150n, expiredAmount: 100n });
    expect(p.changes.expiring.map((e) => [e.operation, e.accountId, e.amount])).toEqual([["EXPIRE", 1n, 100n]]);
    // Past its expiry but not recorded: expired for the caller, left for the sweeper to record.
    const unrecorded = applied(state(), request, past);
    expect(unrecorded.result.expiredAmount).toBe(100n);
    expect(unrecorded.changes.expiring).toEqual([]);
  });

  it("refuses to plan on records that disagree with the charge", () => {
    const short = state({ parts: [{ accountId: 1n, charged: 100n, refunded: 0n }] });
    expect(codeOf(() => planRefund(short, refundWrite(request), NOW))).toMatch(/disagree/);
  });
});

describe("planVoid", () => {
  const deposited = account(5n, { total: 100n, used: 30n, frozen: 20n });
  const state = (over: Partial<VoidState> = {}): VoidState => ({
    stored: null,
    customerPk: 3n,
    record: { id: 11n, accountId: 5n, amount: 100n },
    voided: 0n,
    account: deposited,
    before: balance(100n, 30n, 20n),
    ...over,
  });
  const request: VoidRequest = { projectId: 1n, apiKeyId: null, customerId: "alice", recordId: 11n, voidId: "v1", amount: null };

  it("voids what the deposit's account still has available by default, never what is used or frozen", () => {
    const p = planVoid(state(), voidWrite(request), NOW);
    if (p.kind !== "apply") throw new Error("expected apply");
    expect(p.changes.amount).toBe(50n);
    expect(p.changes.entry).toEqual({ operation: "VOID", accountId: 5n, amount: 50n, creditType: "default", source: "default" });
    expect(p.result).toMatchObject({ voidedAmount: 50n, recordId: 11n, balance: balance(50n, 30n, 20n) });
  });

  it("never more than the deposit added, less earlier voids", () => {
    const big = state({ account: account(5n, { total: 300n }), before: balance(300n), voided: 70n });
    const p = planVoid(big, voidWrite(request), NOW);
    expect(p.kind === "apply" && p.changes.amount).toBe(30n);
    expect(codeOf(() => planVoid(big, voidWrite({ ...request, amount: 31n }), NOW))).toBe("deposit_not_voidable");
    expect(codeOf(() => planVoid(state({ voided: 100n }), voidWrite(request), NOW))).toBe("deposit_not_voidable");
  });

  it("nothing of an expired account; a missing record or customer is not found", () => {
    const expired = state({ account: account(5n, { expiresAtMs: NOW - 1 }) });
    expect(codeOf(() => planVoid(expired, voidWrite(request), NOW))).toBe("deposit_not_voidable");
    expect(codeOf(() => planVoid(state({ record: null, account: null }), voidWrite(request), NOW))).toBe("deposit_not_found");
    expect(codeOf(() => planVoid(state({ customerPk: null }), voidWrite(request), NOW))).toBe("deposit_not_found");
  });

  it("a PENDING account's credits may be voided; the balance does not move", () => {
    const pending = state({ account: account(5n, { startsAtMs: NOW + DAY }), before: balance(0n) });
    const p = planVoid(pending, voidWrite(request), NOW);
    expect(p.kind === "apply" && [p.changes.amount, p.result.balance]).toEqual([100n, balance(0n)]);
  });

  it("replays the same void and refuses its key for another request", () => {
    const same = voidEnvelope(request).requestFingerprint;
    expect(
      planVoid(state({ stored: { customerId: "alice", requestFingerprint: same, response: "{}" } }), voidWrite(request), NOW).kind,
    ).toBe("replay");
    const other = state({ stored: { customerId: "alice", requestFingerprint: "x", response: "{}" } });
    expect(codeOf(() => planVoid(other, voidWrite(request), NOW))).toBe("idempotency_conflict");
  });
});
