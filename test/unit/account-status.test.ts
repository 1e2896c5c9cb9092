import { describe, expect, it } from "vitest";
import { accountStatus, accountView, balanceOf } from "../../src/domain/account-status.js";
import { NO_EXPIRY_MS, NO_START_MS, TIMESTAMP_SECONDS_MAX, TIMESTAMP_SECONDS_MIN } from "../../src/domain/limits.js";
import { account } from "../support/accounts.js";

const FIRST_MS = Number(TIMESTAMP_SECONDS_MIN) * 1000;
const LAST_MS = Number(TIMESTAMP_SECONDS_MAX) * 1000 + 999;

describe("accountView bounds", () => {
  it("answers the sentinels as no bound", () => {
    expect(accountView(account(1n, { startsAtMs: NO_START_MS, expiresAtMs: NO_EXPIRY_MS }), 0)).toMatchObject({
      startsAtMs: null,
      expiresAtMs: null,
    });
  });

  it("answers the first and last valid instants as sent: no valid timestamp is a sentinel", () => {
    expect(NO_START_MS).toBeLessThan(FIRST_MS);
    expect(NO_EXPIRY_MS).toBeGreaterThan(LAST_MS);
    expect(accountView(account(1n, { startsAtMs: FIRST_MS, expiresAtMs: LAST_MS }), 0)).toMatchObject({
      startsAtMs: FIRST_MS,
      expiresAtMs: LAST_MS,
    });
  });
});

describe("accountStatus", () => {
  const NOW = 1_000_000;
  it.each([
    ["before its start", { startsAtMs: NOW + 1 }, "PENDING"],
    ["from its start", { startsAtMs: NOW }, "ACTIVE"],
    ["at its expiry", { expiresAtMs: NOW }, "EXPIRED"],
    // Recorded by an instance whose clock runs ahead: expired here too, before this clock says so.
    ["once its expiry is recorded", { expiresAtMs: NOW + 1000, expiryRecorded: true }, "EXPIRED"],
  ] as const)("%s: %s", (_name, over, status) => {
    expect(accountStatus(account(1n, over), NOW)).toBe(status);
  });

  it("leaves an account whose expiry is recorded out of the balance", () => {
    const accounts = [account(1n, { expiresAtMs: NOW + 1000, expiryRecorded: true }), account(2n, { total: 40n })];
    expect(balanceOf(accounts, NOW)).toEqual({ total: 40n, used: 0n, frozen: 0n, available: 40n });
  });
});
