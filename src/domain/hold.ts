import { BillingError } from "../errors/billing-error.js";
import { minBig } from "./allocation.js";
import type { Metadata, TransactionKind, TransactionStatus } from "./types.js";

/** The parts of a transaction that decide what Consume and Unfreeze may do with it. */
export interface HoldState {
  readonly kind: TransactionKind;
  readonly status: TransactionStatus;
  readonly amount: bigint;
  readonly consumedAmount: bigint;
  readonly settledAutomatically: boolean;
}

export type Decision = "apply" | "replay";

/** FROZEN → CONSUMED, exactly once; a repeat with the same actual amount replays. */
export function decideConsume(hold: HoldState | null, actualAmount: bigint | null): Decision {
  if (hold === null || hold.kind !== "FREEZE") throw new BillingError("no_consumable_freeze_records");
  const actual = actualAmount ?? hold.amount;
  switch (hold.status) {
    case "FROZEN":
      return "apply";
    case "CONSUMED":
      if (hold.consumedAmount === actual) return "replay";
      throw new BillingError("freeze_records_already_consumed", undefined, {
        consumed: hold.consumedAmount,
        requested: actual,
      });
    case "UNFROZEN":
      throw new BillingError(hold.settledAutomatically ? "freeze_auto_unfrozen" : "no_consumable_freeze_records");
    case "DEDUCTED":
      throw new BillingError("no_consumable_freeze_records");
    default:
      return unknownStatus(hold.status);
  }
}

/** A status outside the closed set (parsing at read time should have refused it already). */
function unknownStatus(status: never): never {
  throw new BillingError("freeze_records_inconsistent", undefined, { column: "status", value: String(status) });
}

/** FROZEN → UNFROZEN, exactly once; a repeat replays. */
export function decideUnfreeze(hold: HoldState | null): Decision {
  if (hold === null || hold.kind !== "FREEZE") throw new BillingError("no_unfreezable_records");
  switch (hold.status) {
    case "FROZEN":
      return "apply";
    case "UNFROZEN":
      return "replay";
    case "CONSUMED":
    case "DEDUCTED":
      throw new BillingError("no_unfreezable_records");
    default:
      return unknownStatus(hold.status);
  }
}

export interface FrozenPart {
  readonly accountId: bigint;
  readonly amount: bigint;
}

export interface ConsumeSplit {
  /** Charged from the frozen parts, in allocation order. */
  readonly charges: FrozenPart[];
  /** Returned to the accounts they came from. */
  readonly returns: FrozenPart[];
  /** To be charged beyond the hold from available credits. */
  readonly overage: bigint;
}

/**
 * Walks the frozen parts in allocation order, charging `actual` and returning the rest.
 * Above the frozen amount needs allow_overage.
 */
export function splitConsume(parts: readonly FrozenPart[], actual: bigint, allowOverage: boolean): ConsumeSplit {
  const frozen = parts.reduce((sum, p) => sum + p.amount, 0n);
  if (actual > frozen && !allowOverage) {
    throw new BillingError("actual_amount_exceeds_frozen_amount", undefined, { requested: actual, frozen });
  }
  const charges: FrozenPart[] = [];
  const returns: FrozenPart[] = [];
  let toCharge = actual;
  for (const part of parts) {
    const charge = minBig(part.amount, toCharge);
    toCharge -= charge;
    if (charge > 0n) charges.push({ accountId: part.accountId, amount: charge });
    if (part.amount > charge) returns.push({ accountId: part.accountId, amount: part.amount - charge });
  }
  return { charges, returns, overage: actual > frozen ? actual - frozen : 0n };
}

/** A Deduct or Freeze as read under lock, with what a settlement needs of it. */
export interface Hold extends HoldState {
  readonly pk: bigint;
  readonly transactionId: string;
  readonly customerPk: bigint;
  readonly customerId: string;
  readonly creditTypes: readonly string[];
  readonly businessType: number;
  readonly description: string;
  readonly metadata: Metadata;
}
