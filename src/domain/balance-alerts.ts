import { BillingError } from "../errors/billing-error.js";
import type { AlertEventType, NewEvent } from "./events.js";
import { AMOUNT_MAX } from "./limits.js";

/**
 * Low-balance alerts: a threshold on a customer's `available` (over every credit type, or one),
 * and the state a write leaves it in. Pure. The state is decided by writes under the customer's
 * lock, so concurrent writes crossing one threshold emit one event.
 */

export const ALERT_STATES = ["armed", "low", "depleted"] as const;
export type AlertState = (typeof ALERT_STATES)[number];

export interface BalanceAlert {
  readonly alertId: bigint;
  readonly projectId: bigint;
  readonly customerId: string;
  /** null: every credit type. */
  readonly creditType: string | null;
  readonly threshold: bigint;
  readonly state: AlertState;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
}

/** A customer's available balance, over every ACTIVE account and per credit type. */
export interface AvailableBalances {
  readonly all: bigint;
  readonly byCreditType: ReadonlyMap<string, bigint>;
}

/**
 * The balances after a write, from the ones before and the available change per credit type its
 * entries make (a deduct of 5 from "paid": ["paid", -5n]).
 */
export function shiftAvailable(before: AvailableBalances, changes: readonly (readonly [string, bigint])[]): AvailableBalances {
  const byCreditType = new Map(before.byCreditType);
  let all = before.all;
  for (const [creditType, change] of changes) {
    byCreditType.set(creditType, (byCreditType.get(creditType) ?? 0n) + change);
    all += change;
  }
  return { all, byCreditType };
}

/** What an alert watches of the balances: its credit type's available, or everything's. */
export const availableFor = (balances: AvailableBalances, creditType: string | null): bigint =>
  creditType === null ? balances.all : (balances.byCreditType.get(creditType) ?? 0n);

/** The state `available` puts an alert of `threshold` in: at or above → armed, 0 or less → depleted, else low. */
export function stateFor(threshold: bigint, available: bigint): AlertState {
  if (available >= threshold) return "armed";
  return available <= 0n ? "depleted" : "low";
}

/** One change of an alert's state; `eventType` null: a change no event reports (depleted → low). */
export interface AlertCrossing {
  readonly alertId: bigint;
  readonly newState: AlertState;
  readonly eventType: AlertEventType | null;
  readonly availableBefore: bigint;
  readonly availableAfter: bigint;
}

/**
 * What a write that moves the balances from `before` to `after` does to the customer's alerts,
 * in alert order: armed → low emits balance.low (once: the state remembers it), reaching 0
 * emits balance.depleted (after balance.low when one write does both), back at or above the
 * threshold emits balance.recovered and re-arms. The stored state, not `before`, says which side
 * of the threshold the alert was on, so a balance that moved without a write (credits that
 * started) is reconciled by the next write.
 */
export function crossings(alerts: readonly BalanceAlert[], before: AvailableBalances, after: AvailableBalances): AlertCrossing[] {
  return alerts.flatMap((alert) => crossingsOf(alert, availableFor(before, alert.creditType), availableFor(after, alert.creditType)));
}

/** One alert's crossings when its balance goes from `availableBefore` to `availableAfter`. */
function crossingsOf(alert: BalanceAlert, availableBefore: bigint, availableAfter: bigint): AlertCrossing[] {
  const next = stateFor(alert.threshold, availableAfter);
  const crossing = (newState: AlertState, eventType: AlertEventType | null): AlertCrossing => ({
    alertId: alert.alertId,
    newState,
    eventType,
    availableBefore,
    availableAfter,
  });
  if (next === alert.state) return [];
  if (next === "armed") return [crossing("armed", "balance.recovered")];
  if (alert.state === "armed") {
    return next === "depleted"
      ? [crossing("depleted", "balance.low"), crossing("depleted", "balance.depleted")]
      : [crossing("low", "balance.low")];
  }
  return next === "depleted" ? [crossing("depleted", "balance.depleted")] : [crossing("low", null)];
}

/** The last state each alert reaches, for the UPDATE of the write. */
export function finalStates(list: readonly AlertCrossing[]): Map<bigint, AlertState> {
  return new Map(list.map((c) => [c.alertId, c.newState]));
}

/** The feed event of a crossing that has one (the caller gives the event id and the clock). */
export function alertEventOf(
  alert: BalanceAlert,
  crossing: AlertCrossing,
  /** The event's id, and the transaction id of the write that crossed (null: a deposit, a void, an expiry). */
  made: { readonly eventId: string; readonly transactionId: string | null },
  nowMs: number,
): NewEvent | null {
  if (crossing.eventType === null) return null;
  return {
    eventId: made.eventId,
    projectId: alert.projectId,
    customerId: alert.customerId,
    type: crossing.eventType,
    transactionId: made.transactionId,
    payload: {
      entries: [],
      balanceAfter: null,
      data: {
        alert_id: alert.alertId.toString(),
        threshold: alert.threshold.toString(),
        credit_type: alert.creditType ?? "",
        available_before: crossing.availableBefore.toString(),
        available: crossing.availableAfter.toString(),
      },
    },
    nowMs,
  };
}

/** A threshold as sent: 1 to AMOUNT_MAX. */
export function parseThreshold(raw: bigint): bigint {
  if (raw < 1n) throw new BillingError("amount_must_be_positive", "threshold must be at least 1.", { field: "threshold" });
  if (raw > AMOUNT_MAX) throw new BillingError("invalid_argument", `threshold must be at most ${AMOUNT_MAX}.`, { field: "threshold" });
  return raw;
}
