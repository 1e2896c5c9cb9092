import type { HoldRef } from "../customer-ref.js";
import { holdKey } from "../customer-ref.js";
import type { Charge, ChargedPart } from "./refund-plan.js";
import type { DepositRecord, VoidRequest } from "./void-plan.js";

/** A charge a Refund names, as the prefetch read it; null charge: no such transaction. */
export interface ChargeState {
  readonly charge: Charge | null;
  readonly parts: readonly ChargedPart[];
}

/** A deposit a VoidDeposit names; null record: no such DEPOSIT entry of that customer. */
export interface DepositState {
  readonly record: DepositRecord | null;
  readonly voided: bigint;
}

/**
 * What the prefetch read for a list's reversals, beside the customers (whose accounts include
 * the accounts of these charges and deposits).
 */
export interface ReversalState {
  /** holdKey of the charge → the charge. */
  readonly charges: ReadonlyMap<string, ChargeState>;
  /** depositKey → the deposit. */
  readonly deposits: ReadonlyMap<string, DepositState>;
}

export const chargeKey = (ref: HoldRef): string => holdKey(ref);

export const depositKey = (request: Pick<VoidRequest, "projectId" | "customerId" | "recordId">): string =>
  `${request.projectId}:${request.recordId}:${request.customerId}`;
