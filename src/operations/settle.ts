import type { ConsumeRequest, SettleMode, SettleRequest } from "../domain/requests.js";
import type { ConsumeResult, UnfreezeResult } from "../domain/results.js";
import { consumeWrite, unfreezeWrite } from "../domain/plans/write-list.js";
import type { BillingContext } from "./context.js";
import { runCallerWrite, runWrite } from "./run-write.js";

export type SettleTarget = SettleRequest;
export type ConsumeInput = ConsumeRequest;
export type { SettleMode };

const MANUAL: SettleMode = { automatic: false };
const AUTOMATIC: SettleMode = { automatic: true };

/** Consume: charge the hold (domain/plans/settle-plan.ts), return the rest, through the pipeline. */
export const consume = (ctx: BillingContext, input: ConsumeInput): Promise<ConsumeResult> =>
  runCallerWrite(ctx, consumeWrite(input, MANUAL));

/** Unfreeze: return the whole hold. */
export const unfreeze = (ctx: BillingContext, input: SettleTarget): Promise<UnfreezeResult> =>
  runCallerWrite(ctx, unfreezeWrite(input, MANUAL));

/** The sweeper's settlements: entries marked automatic, and null when the hold, its customer or an account is busy (SKIP LOCKED). */
export const consumeAutomatically = async (ctx: BillingContext, input: ConsumeInput): Promise<ConsumeResult | null> =>
  (await runWrite(ctx, consumeWrite(input, AUTOMATIC))) as ConsumeResult | null;

export const unfreezeAutomatically = async (ctx: BillingContext, input: SettleTarget): Promise<UnfreezeResult | null> =>
  (await runWrite(ctx, unfreezeWrite(input, AUTOMATIC))) as UnfreezeResult | null;
