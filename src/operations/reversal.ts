import type { RefundRequest, RefundResult } from "../domain/plans/refund-plan.js";
import type { VoidRequest, VoidResult } from "../domain/plans/void-plan.js";
import { refundWrite, voidWrite } from "../domain/plans/write-list.js";
import type { BillingContext } from "./context.js";
import { runCallerWrite } from "./run-write.js";

export type { RefundRequest, RefundResult, VoidRequest, VoidResult };

/** Refund: credits of a charge back to the accounts it took them from (domain/plans/refund-plan.ts), through the pipeline. */
export const refund = (ctx: BillingContext, input: RefundRequest): Promise<RefundResult> => runCallerWrite(ctx, refundWrite(input));

/** VoidDeposit: credits a deposit granted by mistake taken off its account (domain/plans/void-plan.ts). */
export const voidDeposit = (ctx: BillingContext, input: VoidRequest): Promise<VoidResult> => runCallerWrite(ctx, voidWrite(input));
