import type { ConsumeRequest, SettleMode, SettleRequest } from "../domain/requests.js";
import type { ConsumeResult, UnfreezeResult } from "../domain/results.js";
import { type CreditWrite, consumeWrite, unfreezeWrite } from "../domain/plans/write-list.js";
import type { BillingContext } from "./context.js";
import { runCallerWrite } from "./run-write.js";

export type SettleTarget = SettleRequest;
export type ConsumeInput = ConsumeRequest;

/** A settlement a caller asked for (not the sweeper's). */
export const MANUAL: SettleMode = { automatic: false };
const AUTOMATIC: SettleMode = { automatic: true };

/** Consume: charge the hold (domain/plans/settle-plan.ts), return the rest, through the pipeline. */
export const consume = (ctx: BillingContext, input: ConsumeInput): Promise<ConsumeResult> =>
  runCallerWrite(ctx, consumeWrite(input, MANUAL));

/** Unfreeze: return the whole hold. */
export const unfreeze = (ctx: BillingContext, input: SettleTarget): Promise<UnfreezeResult> =>
  runCallerWrite(ctx, unfreezeWrite(input, MANUAL));

/** The sweeper's settlement of a due hold, as the hold asked: consume all of it, or unfreeze it; its entries marked automatic. */
export const automaticSettlement = (hold: SettleTarget, action: "CONSUME" | "UNFREEZE"): CreditWrite =>
  action === "CONSUME" ? consumeWrite({ ...hold, actualAmount: null, allowOverage: false }, AUTOMATIC) : unfreezeWrite(hold, AUTOMATIC);
