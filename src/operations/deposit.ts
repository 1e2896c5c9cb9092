import type { DepositRequest } from "../domain/requests.js";
import type { DepositResult } from "../domain/results.js";
import { depositWrite } from "../domain/plans/write-list.js";
import type { BillingContext } from "./context.js";
import { runCallerWrite } from "./run-write.js";

export type DepositInput = DepositRequest;

/** Deposit: credits the account with the deposit's key (domain/plans/deposit-plan.ts), through the pipeline. */
export const deposit = (ctx: BillingContext, input: DepositInput): Promise<DepositResult> => runCallerWrite(ctx, depositWrite(input));
