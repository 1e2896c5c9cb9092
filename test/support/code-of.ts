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
