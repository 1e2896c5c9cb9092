import {
  EntitlementEventType as ProtoEventType,
  type Entitlement,
  type GetEntitlementRequest,
  type ListEntitlementEventsRequest,
  type ListEntitlementEventsResponse,
  type ListEntitlementsRequest,
  type SetEntitlementRequest,
  type SetEntitlementResponse,
} from "../../gen/velobase/billing/v1/entitlements.js";
import type { EntitlementEventQuery, EntitlementEventView, ListEntitlementsInput } from "../operations/entitlements/read-entitlements.js";
import type { EntitlementTarget, SetEntitlementInput } from "../operations/entitlements/write-entitlements.js";
import {
  parseEntitlementValue,
  parseFeatureKey,
  type EntitlementEventType,
  type EntitlementWithStatus,
  type SetEntitlementResult,
} from "../domain/entitlements.js";
import type { EventPage } from "../domain/event-cursor.js";
import { metadataMap } from "./format-responses.js";
import { parseLimit, parseTimeBound } from "../domain/event-query.js";
import { DESCRIPTION_LENGTH_MAX, FEATURE_KEYS_PER_REQUEST_MAX } from "../domain/limits.js";
import { parseId, parseMetadata, parseSource, parseText, parseTimestamp } from "../domain/validation.js";
import { BillingError } from "../errors/billing-error.js";
import { timestamp } from "./format-responses.js";

/** EntitlementService requests → operation inputs, and results → responses. */

const customerIdOf = (raw: string) => parseId(raw, "customer_id", "customer_id_required");

export function parseTarget(r: GetEntitlementRequest, projectId: bigint): EntitlementTarget {
  return { projectId, customerId: customerIdOf(r.customerId), featureKey: parseFeatureKey(r.featureKey) };
}

export function parseSetEntitlement(r: SetEntitlementRequest, projectId: bigint): SetEntitlementInput {
  const metadata = parseMetadata(r.metadata);
  return {
    ...parseTarget(r, projectId),
    value: parseEntitlementValue(r.value),
    validFromMs: parseTimestamp(r.validFrom, "valid_from", "invalid_valid_from"),
    validUntilMs: parseTimestamp(r.validUntil, "valid_until", "invalid_valid_until"),
    // An explicit empty source means none: the default of a string field cannot be told apart.
    source: r.source === undefined || r.source === "" ? null : parseSource(r.source, ""),
    description: r.description === undefined ? null : parseText(r.description, "description", DESCRIPTION_LENGTH_MAX),
    metadata: Object.keys(metadata).length === 0 ? null : metadata,
  };
}

export function parseListEntitlements(r: ListEntitlementsRequest, projectId: bigint): ListEntitlementsInput {
  if (r.featureKeys.length > FEATURE_KEYS_PER_REQUEST_MAX) {
    throw new BillingError("invalid_argument", `feature_keys holds at most ${FEATURE_KEYS_PER_REQUEST_MAX} keys.`, {
      field: "feature_keys",
    });
  }
  return {
    projectId,
    customerId: customerIdOf(r.customerId),
    featureKeys: [...new Set(r.featureKeys.map((k) => parseFeatureKey(k, "feature_keys")))].sort(),
    includeExpired: r.includeExpired,
  };
}

const EVENT_TYPE: Record<EntitlementEventType, ProtoEventType> = {
  SET: ProtoEventType.ENTITLEMENT_EVENT_TYPE_SET,
  REMOVE: ProtoEventType.ENTITLEMENT_EVENT_TYPE_REMOVE,
};

function eventTypeOf(raw: ProtoEventType): EntitlementEventType {
  const found = (Object.keys(EVENT_TYPE) as EntitlementEventType[]).find((t) => EVENT_TYPE[t] === raw);
  if (!found) throw new BillingError("invalid_argument", "types holds an unknown value.", { field: "types", value: raw });
  return found;
}

export function parseListEntitlementEvents(r: ListEntitlementEventsRequest, projectId: bigint): EntitlementEventQuery {
  return {
    projectId,
    customerId: customerIdOf(r.customerId),
    featureKey: r.featureKey === "" ? null : parseFeatureKey(r.featureKey),
    types: [...new Set(r.types.map(eventTypeOf))].sort(),
    fromMs: parseTimeBound(r.fromAt, "from_at", "invalid_from_at"),
    toMs: parseTimeBound(r.toAt, "to_at", "invalid_to_at"),
    cursor: r.cursor === "" ? null : r.cursor,
    limit: parseLimit(r.limit ?? null),
  };
}

const orUndefined = <T>(value: T | null): T | undefined => (value === null ? undefined : value);

export const entitlement = (e: EntitlementWithStatus): Entitlement => ({
  entitlementId: e.entitlementId.toString(),
  featureKey: e.featureKey,
  value: e.value,
  validFrom: timestamp(e.validFromMs),
  validUntil: timestamp(e.validUntilMs),
  source: orUndefined(e.source),
  description: orUndefined(e.description),
  metadata: metadataMap(e.metadata ?? {}),
  isActive: e.isActive,
  hasMetadata: e.metadata !== null,
});

export const setEntitlementResponse = (r: SetEntitlementResult): SetEntitlementResponse => ({
  entitlement: entitlement(r.entitlement),
  isCreated: r.isCreated,
  oldValue: orUndefined(r.oldValue),
});

export const entitlementEventsResponse = (page: EventPage<EntitlementEventView>): ListEntitlementEventsResponse => ({
  items: page.items.map((e) => ({
    id: e.id.toString(),
    featureKey: e.featureKey,
    type: EVENT_TYPE[e.type],
    oldValue: orUndefined(e.oldValue),
    newValue: orUndefined(e.newValue),
    source: orUndefined(e.source),
    description: orUndefined(e.description),
    createdAt: timestamp(e.createdAtMs),
  })),
  totalCount: BigInt(page.totalCount),
  hasMore: page.hasMore,
  nextCursor: page.nextCursor ?? "",
});
