import { BillingError } from "../../src/errors/billing-error.js";

/** The catalogue code `run` throws, "ok" when it returns, or the text of anything else thrown. */
export function codeOf(run: () => unknown): string {
  try {
    run();
    return "ok";
  } catch (error) {
    return error instanceof BillingError ? error.code : String(error);
  }
}

/** What `run` throws (an Error, as everything thrown here is); a test failure when it returns. */
export function thrownBy(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    if (error instanceof Error) return error;
    throw new Error(`threw a non-error: ${String(error)}`);
  }
  throw new Error("did not throw");
}
