/**
 * Amounts are JSON numbers on the HTTP API. Inputs are checked by the schemas (integers within
 * the amount limit, far below 2^53); outputs are sums the database holds, which the deposit's
 * customer limit (CUSTOMER_CREDITS_TOTAL_MAX = 2^53 - 1) keeps exact. Should a row edited
 * by hand pass it anyway, the call fails as server_error (logged) rather than send a rounded
 * number.
 */
export function amountToJson(amount: bigint): number {
  const value = Number(amount);
  if (!Number.isSafeInteger(value)) throw new RangeError("an amount exceeds the JSON safe integer range");
  return value;
}

/** A schema-checked integer as the bigint the operations take. */
export const amountFromJson = (value: number): bigint => BigInt(value);
