import { describe, expect, it } from "vitest";
import { accountView } from "../../src/domain/account-status.js";
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
