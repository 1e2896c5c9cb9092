import type { FreezeRequest, SpendRequest } from "../domain/requests.js";
import type { SpendResult } from "../domain/results.js";
import { spendWrite } from "../domain/plans/write-list.js";
import type { BillingContext } from "./context.js";
import { runCallerWrite } from "./run-write.js";

export type SpendInput = SpendRequest;
export type FreezeInput = FreezeRequest;

/** Deduct: allocate over ACTIVE accounts (domain/plans/spend-plan.ts) into used, through the pipeline. */
export const deduct = (ctx: BillingContext, input: SpendInput): Promise<SpendResult> =>
  runCallerWrite(ctx, spendWrite("DEDUCT", { ...input, autoSettlement: null }));

/** Freeze: the same allocation into frozen, with an optional auto-settlement deadline. */
export const freeze = (ctx: BillingContext, input: FreezeInput): Promise<SpendResult> => runCallerWrite(ctx, spendWrite("FREEZE", input));
