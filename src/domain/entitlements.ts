import { BillingError } from "../errors/billing-error.js";
import { ENTITLEMENT_VALUE_LENGTH_MAX, FEATURE_KEY_PATTERN } from "./limits.js";
import type { Metadata } from "./types.js";

/** Entitlements: one value per (customer, feature_key) with an optional validity window. Pure. */

export const ENTITLEMENT_EVENT_TYPES = ["SET", "REMOVE"] as const;
export type EntitlementEventType = (typeof ENTITLEMENT_EVENT_TYPES)[number];

/** What Set writes: everything but the id, which the database assigns on create. */
export interface EntitlementFields {
  readonly featureKey: string;
  readonly value: string;
  readonly validFromMs: number | null;
  readonly validUntilMs: number | null;
  readonly source: string | null;
  readonly description: string | null;
  readonly metadata: Metadata | null;
}

/** An entitlement as stored and answered; nulls stay nulls (Velobase sends them as JSON null). */
export interface EntitlementView extends EntitlementFields {
  readonly entitlementId: bigint;
}

export interface EntitlementWithStatus extends EntitlementView {
  readonly isActive: boolean;
}

export interface SetEntitlementResult {
  readonly entitlement: EntitlementWithStatus;
  readonly isCreated: boolean;
  /** null on create. */
  readonly oldValue: string | null;
}

export interface RemoveEntitlementResult {
  readonly removed: boolean;
  readonly oldValue: string | null;
}

/** valid_until must be after valid_from when both are set; a past valid_until is accepted. */
export function checkEntitlementWindow(window: { validFromMs: number | null; validUntilMs: number | null }): void {
  const { validFromMs, validUntilMs } = window;
  if (validFromMs !== null && validUntilMs !== null && validUntilMs <= validFromMs) {
    throw new BillingError("entitlement_validation_error", undefined, { field: "valid_until" });
  }
}

/** Expired: its valid_until has passed (at exactly now counts as expired, as for accounts). */
export const isExpired = (e: EntitlementView, nowMs: number): boolean => e.validUntilMs !== null && e.validUntilMs <= nowMs;

/** Active: started and not expired. */
export const isActive = (e: EntitlementView, nowMs: number): boolean =>
  !isExpired(e, nowMs) && (e.validFromMs === null || e.validFromMs <= nowMs);

export const withStatus = (e: EntitlementView, nowMs: number): EntitlementWithStatus => ({ ...e, isActive: isActive(e, nowMs) });

/**
 * Set: creates the entitlement or replaces its value and window. `current` is the row read under
 * the customer lock, null when none.
 */
export function planSet(
  current: EntitlementView | null,
  fields: EntitlementFields,
): { isCreated: boolean; oldValue: string | null; fields: EntitlementFields } {
  checkEntitlementWindow(fields);
  return { isCreated: current === null, oldValue: current?.value ?? null, fields };
}

/** The view list answers: expired ones only when asked, each with whether it is active now. */
export function visibleEntitlements(all: readonly EntitlementView[], nowMs: number, includeExpired: boolean): EntitlementWithStatus[] {
  return all.filter((e) => includeExpired || !isExpired(e, nowMs)).map((e) => withStatus(e, nowMs));
}

/** Field parsers of the entitlement requests, shared by the transports. */

export function parseFeatureKey(raw: string, field = "feature_key"): string {
  if (raw === "") throw new BillingError("feature_key_required", undefined, { field });
  if (!FEATURE_KEY_PATTERN.test(raw)) {
    throw new BillingError("invalid_argument", `${field} must be 1-128 characters of [A-Za-z0-9_.:@-].`, { field });
  }
  return raw;
}

export function parseEntitlementValue(raw: string): string {
  if (raw === "") throw new BillingError("value_required", undefined, { field: "value" });
  if (raw.length > ENTITLEMENT_VALUE_LENGTH_MAX) {
    throw new BillingError("invalid_argument", `value must be at most ${ENTITLEMENT_VALUE_LENGTH_MAX} characters.`, {
      field: "value",
    });
  }
  return raw;
}
