import { BillingError } from "../errors/billing-error.js";
import { CUSTOMER_UNEXPIRED_TOTAL_MAX } from "./limits.js";

/**
 * A deposit of `amount` must keep the customer's unexpired credits within
 * CUSTOMER_UNEXPIRED_TOTAL_MAX; beyond it, invalid_argument on `amount` with what still fits.
 */
export function checkCustomerTotal(unexpiredTotal: bigint, amount: bigint): void {
  const remaining = CUSTOMER_UNEXPIRED_TOTAL_MAX - unexpiredTotal;
  if (amount <= remaining) return;
  throw new BillingError(
    "invalid_argument",
    `The deposit would take the customer's unexpired credits beyond ${CUSTOMER_UNEXPIRED_TOTAL_MAX}.`,
    { field: "amount", requested: amount, remaining },
  );
}
