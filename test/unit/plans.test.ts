import { describe, expect, it } from "vitest";
import type { Hold } from "../../src/domain/hold.js";
import { consumeEnvelope, type StoredOutcome } from "../../src/domain/idempotency.js";
import {
  depositEnvelope,
  PENDING_ACCOUNT_ID,
  PENDING_LEDGER_ENTRY_ID,
  planDeposit,
  withWrittenIds,
} from "../../src/domain/plans/deposit-plan.js";
import { planConsume, planUnfreeze, type SettleState } from "../../src/domain/plans/settle-plan.js";
import { planSpend, type SpendState, spendEnvelope } from "../../src/domain/plans/spend-plan.js";
import { consumeWrite, depositWrite, spendWrite, unfreezeWrite } from "../../src/domain/plans/write-list.js";
import type { ConsumeRequest, DepositRequest, FreezeRequest } from "../../src/domain/requests.js";
import { account } from "../support/accounts.js";
import { codeOf } from "../support/code-of.js";

// The plans are pure: state + request + clock in, a decision out. No database here.

const NOW = 1_800_000_000_000;
const MANUAL = { automatic: false };
const AUTOMATIC = { automatic: true };

const balance = (total: bigint, used = 0n, frozen = 0n) => ({ total, used, frozen, available: total - used - frozen });

describe("planDeposit", () => {
  const request: DepositRequest = {
    projectId: 1n,
    apiKeyId: null,
    customerId: "c1",
    amount: 50n,
    idempotencyKey: "k1",
    creditType: "default",
    source: "default",
    startsAtMs: null,
    expiresAtMs: null,
    name: "",
    email: "",
    description: "",
    metadata: {},
  };
  const state = { stored: null, customerPk: 7n, before: balance(100n), ledgerTotal: 100n, account: account(3n) };

  it("credits the account with the deposit's key and answers the balance after", () => {
    const planned = planDeposit(state, depositWrite(request), NOW);
    if (planned.kind !== "apply") throw new Error(planned.kind);
    expect(planned.changes).toMatchObject({ customerPk: 7n, accountId: 3n, amount: 50n });
    expect(planned.result.account).toMatchObject({ id: 3n, total: 150n, available: 150n });
    expect(planned.result.balance).toEqual(balance(150n));
    expect(planned.result.ledgerEntryId).toBe(PENDING_LEDGER_ENTRY_ID);
    expect(withWrittenIds(planned.result, { accountId: 3n, ledgerEntryId: 9n }).ledgerEntryId).toBe(9n);
  });

  it("creates the account when none has the key; its id is known once written", () => {
    const planned = planDeposit({ ...state, account: null }, depositWrite(request), NOW);
    if (planned.kind !== "apply") throw new Error(planned.kind);
    expect([planned.changes.accountId, planned.result.account.id, planned.result.account.total]).toEqual([null, PENDING_ACCOUNT_ID, 50n]);
  });

  it("does not count a pending account in the balance", () => {
    const planned = planDeposit({ ...state, account: null }, depositWrite({ ...request, startsAtMs: NOW + 1000 }), NOW);
    if (planned.kind !== "apply") throw new Error(planned.kind);
    expect(planned.result.balance).toEqual(balance(100n));
  });

  it.each([
    ["the same request again", { customerId: "c1", requestFingerprint: depositEnvelope(request)?.requestFingerprint ?? "" }, "replay"],
    ["the key for another customer", { customerId: "c2", requestFingerprint: "x" }, "transaction_conflict"],
    ["the key with other parameters", { customerId: "c1", requestFingerprint: "x" }, "idempotency_conflict"],
  ])("replays or refuses %s", (_name, stored, expected) => {
    const outcome: StoredOutcome = { ...stored, response: "{}" };
    let kind = "";
    const code = codeOf(() => (kind = planDeposit({ ...state, stored: outcome }, depositWrite(request), NOW).kind));
    expect(code === "ok" ? kind : code).toBe(expected);
  });

  it.each([
    ["an expiry in the past", { expiresAtMs: NOW - 1 }, {}, "invalid_expires_at"],
    ["a ledger total beyond int64", {}, { ledgerTotal: 9_223_372_036_854_775_807n }, "invalid_argument"],
    // Another instance, its clock ahead, has recorded the account's expiry: expired whatever NOW says.
    [
      "an account whose expiry is recorded",
      { expiresAtMs: NOW + 1000 },
      { account: account(3n, { expiresAtMs: NOW + 1000, expiryRecorded: true }) },
      "invalid_expires_at",
    ],
  ])("refuses %s", (_name, over, stateOver, code) => {
    expect(codeOf(() => planDeposit({ ...state, ...stateOver }, depositWrite({ ...request, ...over }), NOW))).toBe(code);
  });
});

describe("planSpend", () => {
  const request: FreezeRequest = {
    projectId: 1n,
    apiKeyId: null,
    customerId: "c1",
    transactionId: "t1",
    amount: 120n,
    creditTypes: [],
    businessType: 0,
    description: "",
    metadata: {},
    autoSettlement: null,
  };
  const soon = account(1n, { expiresAtMs: NOW + 60_000, total: 100n });
  const later = account(2n, { total: 100n, createdAtMs: NOW - 1000 });
  const state: SpendState = { stored: null, customerPk: 7n, accounts: [soon, later], complete: true, before: balance(200n) };

  it("freezes soonest expiry first and answers the balance after", () => {
    const planned = planSpend("FREEZE", state, spendWrite("FREEZE", request), NOW);
    if (planned.kind !== "apply") throw new Error(planned.kind);
    expect(planned.changes.deltas).toEqual([
      { accountId: 1n, used: 0n, frozen: 100n },
      { accountId: 2n, used: 0n, frozen: 20n },
    ]);
    expect(planned.result.balance).toEqual(balance(200n, 0n, 120n));
  });

  it("deducts into used", () => {
    const planned = planSpend("DEDUCT", state, spendWrite("DEDUCT", { ...request, amount: 30n }), NOW);
    if (planned.kind !== "apply") throw new Error(planned.kind);
    expect(planned.changes.deltas).toEqual([{ accountId: 1n, used: 30n, frozen: 0n }]);
  });

  it("asks for more when only the first accounts were read and they fall short", () => {
    expect(planSpend("FREEZE", { ...state, complete: false }, spendWrite("FREEZE", { ...request, amount: 201n }), NOW).kind).toBe("more");
    expect(planSpend("FREEZE", { ...state, complete: false }, spendWrite("FREEZE", request), NOW).kind).toBe("apply");
  });

  it.each([
    ["an unknown customer", { customerPk: null }, "customer_not_found"],
    ["too little credit", { before: balance(200n), accounts: [soon] }, "insufficient_balance"],
  ])("refuses %s", (_name, over, code) => {
    expect(codeOf(() => planSpend("FREEZE", { ...state, ...over }, spendWrite("FREEZE", { ...request, amount: 250n }), NOW))).toBe(code);
  });

  it("replays the same Freeze, and refuses the key for a Deduct", () => {
    const stored = { customerId: "c1", requestFingerprint: spendEnvelope("FREEZE", request).requestFingerprint, response: "{}" };
    expect(planSpend("FREEZE", { ...state, stored, customerPk: null }, spendWrite("FREEZE", request), NOW).kind).toBe("replay");
    expect(codeOf(() => planSpend("DEDUCT", { ...state, stored }, spendWrite("DEDUCT", request), NOW))).toBe("idempotency_conflict");
  });
});

describe("planConsume and planUnfreeze", () => {
  const hold: Hold = {
    pk: 5n,
    transactionId: "t1",
    customerPk: 7n,
    customerId: "c1",
    kind: "FREEZE",
    status: "FROZEN",
    amount: 60n,
    consumedAmount: 0n,
    settledAutomatically: false,
    creditTypes: [],
    businessType: 0,
    description: "",
    metadata: {},
  };
  const held = account(1n, { total: 100n, frozen: 60n });
  const state: SettleState = {
    stored: null,
    hold,
    parts: [{ accountId: 1n, amount: 60n }],
    accounts: [held],
    spendable: null,
    before: balance(100n, 0n, 60n),
    expiryRecorded: new Set(),
    busy: false,
  };
  const request: ConsumeRequest = {
    projectId: 1n,
    apiKeyId: null,
    transactionId: "t1",
    customerId: null,
    actualAmount: 45n,
    allowOverage: false,
  };

  it("charges the actual amount and returns the rest", () => {
    const planned = planConsume(state, consumeWrite(request, MANUAL), MANUAL, NOW);
    if (planned.kind !== "apply") throw new Error(planned.kind);
    expect([planned.result.consumedAmount, planned.result.returnedAmount, planned.result.balance]).toEqual([
      45n,
      15n,
      balance(100n, 45n, 0n),
    ]);
    expect(planned.changes.entries.map((e) => [e.operation, e.amount])).toEqual([
      ["CONSUME", 45n],
      ["UNFREEZE", 15n],
    ]);
  });

  it("asks for the spendable accounts once an overage needs them", () => {
    const overage = { ...request, actualAmount: 70n, allowOverage: true };
    expect(planConsume(state, consumeWrite(overage, MANUAL), MANUAL, NOW).kind).toBe("more");
    const planned = planConsume({ ...state, spendable: [held] }, consumeWrite(overage, MANUAL), MANUAL, NOW);
    if (planned.kind !== "apply") throw new Error(planned.kind);
    expect(planned.result.overageAmount).toBe(10n);
  });

  it("replays the same settlement and refuses another with the hold's code", () => {
    const settled = { ...state, hold: { ...hold, status: "CONSUMED" as const, consumedAmount: 45n } };
    const stored = { customerId: "c1", requestFingerprint: consumeEnvelope("t1", 45n).requestFingerprint, response: "{}" };
    expect(planConsume({ ...settled, stored }, consumeWrite(request, MANUAL), MANUAL, NOW).kind).toBe("replay");
    expect(codeOf(() => planConsume({ ...settled, stored }, consumeWrite({ ...request, actualAmount: 5n }, MANUAL), MANUAL, NOW))).toBe(
      "freeze_records_already_consumed",
    );
    expect(codeOf(() => planUnfreeze({ ...settled, stored }, unfreezeWrite(request, MANUAL), MANUAL, NOW))).toBe("no_unfreezable_records");
    expect(codeOf(() => planConsume(settled, consumeWrite(request, MANUAL), MANUAL, NOW))).toBe("freeze_records_inconsistent");
  });

  it.each([
    ["an unknown hold", { hold: null }, request, "no_consumable_freeze_records"],
    ["another customer's hold", {}, { ...request, customerId: "c2" }, "customer_scope_mismatch"],
    ["more than frozen without overage", {}, { ...request, actualAmount: 61n }, "actual_amount_exceeds_frozen_amount"],
    ["allocations that do not add up", { parts: [{ accountId: 1n, amount: 50n }] }, request, "freeze_records_inconsistent"],
  ])("refuses %s", (_name, over, req, code) => {
    expect(codeOf(() => planConsume({ ...state, ...over }, consumeWrite(req, MANUAL), MANUAL, NOW))).toBe(code);
  });

  it("lets the sweeper skip a busy or vanished hold", () => {
    expect(planUnfreeze({ ...state, busy: true }, unfreezeWrite(request, AUTOMATIC), AUTOMATIC, NOW).kind).toBe("skip");
    expect(planUnfreeze({ ...state, hold: null }, unfreezeWrite(request, AUTOMATIC), AUTOMATIC, NOW).kind).toBe("skip");
    expect(planUnfreeze({ ...state, busy: true }, unfreezeWrite(request, MANUAL), MANUAL, NOW).kind).toBe("apply");
  });
});
