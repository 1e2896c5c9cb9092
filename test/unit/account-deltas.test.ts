import { describe, expect, it } from "vitest";
import { balanceAfter, mergeDeltas } from "../../src/domain/account-deltas.js";
import { account } from "../support/accounts.js";

const NOW = 1_000_000;

describe("account deltas", () => {
  it("merge per account in first-seen order", () => {
    expect(
      mergeDeltas([
        { accountId: 2n, used: 1n, frozen: -1n },
        { accountId: 1n, used: 0n, frozen: 5n },
        { accountId: 2n, used: 3n, frozen: 0n },
      ]),
    ).toEqual([
      { accountId: 2n, used: 4n, frozen: -1n },
      { accountId: 1n, used: 0n, frozen: 5n },
    ]);
  });

  it("change the balance only through ACTIVE accounts", () => {
    const before = { total: 100n, used: 0n, frozen: 50n, available: 50n };
    const accounts = [account(1n, { frozen: 50n }), account(2n, { frozen: 50n, expiresAtMs: NOW })];
    const after = balanceAfter(
      before,
      accounts,
      [
        { accountId: 1n, used: 30n, frozen: -50n },
        { accountId: 2n, used: 40n, frozen: -40n },
      ],
      NOW,
    );
    expect(after).toEqual({ total: 100n, used: 30n, frozen: 0n, available: 70n });
  });
});
