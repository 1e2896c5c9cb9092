import { describe, expect, it } from "vitest";
import { allocate } from "../../src/domain/allocation.js";
import { ACCOUNTS_PER_CALL_MAX } from "../../src/domain/limits.js";
import { account } from "../support/accounts.js";
import { BillingError } from "../../src/errors/billing-error.js";

const NOW = 1_000_000;

function failure(run: () => unknown): BillingError {
  try {
    run();
  } catch (error) {
    if (error instanceof BillingError) return error;
  }
  throw new Error("expected a BillingError");
}

describe("allocate", () => {
  it("spends from up to ACCOUNTS_PER_CALL_MAX accounts and refuses one more, naming amount", () => {
    const accounts = Array.from({ length: ACCOUNTS_PER_CALL_MAX + 1 }, (_, i) => account(BigInt(i + 1), { total: 1n }));
    const max = BigInt(ACCOUNTS_PER_CALL_MAX);
    expect(allocate({ accounts, amount: max, creditTypes: [], nowMs: NOW })).toHaveLength(ACCOUNTS_PER_CALL_MAX);
    const refused = failure(() => allocate({ accounts, amount: max + 1n, creditTypes: [], nowMs: NOW }));
    expect([refused.code, refused.facts]).toEqual(["invalid_argument", { field: "amount", accounts_max: ACCOUNTS_PER_CALL_MAX }]);
    const short = failure(() => allocate({ accounts, amount: max + 2n, creditTypes: [], nowMs: NOW }));
    expect(short.code).toBe("insufficient_balance");
  });

  it("spends soonest expiry first, never-expiring last, then oldest, then lowest id", () => {
    const accounts = [
      account(1n),
      account(2n, { expiresAtMs: NOW + 500 }),
      account(3n, { expiresAtMs: NOW + 100 }),
      account(5n, { createdAtMs: 10 }),
      account(4n, { createdAtMs: 10 }),
    ];
    const lines = allocate({ accounts, amount: 450n, creditTypes: [], nowMs: NOW });
    expect(lines.map((l) => [l.accountId, l.amount])).toEqual([
      [3n, 100n],
      [2n, 100n],
      [1n, 100n],
      [4n, 100n],
      [5n, 50n],
    ]);
  });

  it("skips pending, expired (at exactly now) and empty accounts", () => {
    const accounts = [
      account(1n, { startsAtMs: NOW + 1 }),
      account(2n, { expiresAtMs: NOW }),
      account(3n, { used: 60n, frozen: 40n }),
      account(4n, { used: 10n, frozen: 20n }),
    ];
    expect(allocate({ accounts, amount: 70n, creditTypes: [], nowMs: NOW })).toEqual([
      { accountId: 4n, creditType: "default", source: "default", amount: 70n },
    ]);
  });

  it("spends an account whose start is exactly now", () => {
    expect(allocate({ accounts: [account(1n, { startsAtMs: NOW })], amount: 1n, creditTypes: [], nowMs: NOW })).toHaveLength(1);
  });

  it("is all or nothing: insufficient_balance with requested, available and the wallet", () => {
    const e = failure(() => allocate({ accounts: [account(1n), account(2n)], amount: 201n, creditTypes: [], nowMs: NOW }));
    expect([e.code, e.facts]).toEqual(["insufficient_balance", { requested: 201n, available: 200n, wallet: "*" }]);
  });

  it("tells insufficient-in-selected-types from plain insufficient", () => {
    const accounts = [account(1n, { creditType: "promo" }), account(2n, { creditType: "paid", total: 50n })];
    const selected = failure(() => allocate({ accounts, amount: 60n, creditTypes: ["paid"], nowMs: NOW }));
    expect([selected.code, selected.facts]).toEqual([
      "insufficient_balance_in_selected_credit_types",
      { requested: 60n, available: 50n, wallet: "paid" },
    ]);
    const overall = failure(() => allocate({ accounts, amount: 151n, creditTypes: ["paid"], nowMs: NOW }));
    expect([overall.code, overall.facts]).toEqual(["insufficient_balance", { requested: 151n, available: 50n, wallet: "paid" }]);
    expect(allocate({ accounts, amount: 50n, creditTypes: ["paid"], nowMs: NOW }).map((l) => l.accountId)).toEqual([2n]);
  });
});
