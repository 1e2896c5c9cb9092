import { BillingError } from "../errors/billing-error.js";
import { CUSTOMER_CREDITS_TOTAL_MAX } from "./limits.js";

/**
 * A deposit of `amount` must keep the customer's ledger total (`balance_after.total`) within
 * CUSTOMER_CREDITS_TOTAL_MAX; beyond it, invalid_argument on `amount` with what still fits.
 */
export function checkCustomerTotal(ledgerTotal: bigint, amount: bigint): void {
  const remaining = CUSTOMER_CREDITS_TOTAL_MAX - ledgerTotal;
  if (amount <= remaining) return;
  throw new BillingError("invalid_argument", `The deposit would take the customer's credits beyond ${CUSTOMER_CREDITS_TOTAL_MAX}.`, {
    field: "amount",
    requested: amount,
    remaining,
  });
}
