import { describe, expect, it } from "vitest";
import { checkCustomerTotal } from "../../src/domain/customer-limit.js";
import { CUSTOMER_CREDITS_TOTAL_MAX } from "../../src/domain/limits.js";
import { BillingError } from "../../src/errors/billing-error.js";
import { codeOf } from "../support/code-of.js";

const MAX = CUSTOMER_CREDITS_TOTAL_MAX;

describe("checkCustomerTotal", () => {
  it("bounds a customer's ledger total by 2^53 - 1, exact as a JSON number", () => {
    expect(MAX).toBe(9_007_199_254_740_991n);
    expect(MAX).toBe(BigInt(Number.MAX_SAFE_INTEGER));
  });

  it.each([
    [0n, 1n, "ok"],
    [0n, MAX, "ok"],
    [MAX - 1n, 1n, "ok"],
    [MAX, 1n, "invalid_argument"],
    [MAX - 1n, 2n, "invalid_argument"],
    [1n, MAX, "invalid_argument"],
  ])("ledger total %s plus a deposit of %s: %s", (total, amount, expected) => {
    expect(codeOf(() => checkCustomerTotal(total, amount))).toBe(expected);
  });

  it("names amount and what still fits", () => {
    try {
      checkCustomerTotal(MAX - 5n, 6n);
      throw new Error("expected a refusal");
    } catch (error) {
      expect(error instanceof BillingError && error.facts).toEqual({ field: "amount", requested: 6n, remaining: 5n });
    }
  });
});
