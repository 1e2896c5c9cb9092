import {
  PoolStatus as ProtoPoolStatus,
  SlotEventType as ProtoSlotEventType,
  type ClaimRequest,
  type GrantCapacityRequest,
  type ListPoolsRequest,
  type ListSlotEventsRequest,
  type ListSlotEventsResponse,
  type Pool,
  type ReleaseRequest,
  type RevokeCapacityRequest,
} from "../../gen/velobase/billing/v1/slots.js";
import type { CapacityInput } from "../operations/slots/capacity.js";
import type { ClaimInput, ReleaseInput } from "../operations/slots/claim.js";
import type { ListPoolsInput, SlotEventQuery, SlotEventView } from "../operations/slots/list-slots.js";
import type { EventPage } from "../domain/event-cursor.js";
import { parseLimit, parseTimeBound } from "../domain/event-query.js";
import { DEFAULT_SLOT_SOURCE, DESCRIPTION_LENGTH_MAX, EVENT_FILTER_VALUES_MAX } from "../domain/limits.js";
import { parseResourceId, parseWallet, type PoolStatus, type PoolView, type SlotEventType } from "../domain/slots.js";
import { parseAmount, parseId, parseOptionalId, parseSource, parseText } from "../domain/validation.js";
import { BillingError } from "../errors/billing-error.js";
import { timestamp } from "./format-responses.js";

/** SlotService requests → operation inputs, and results → responses. */

const customerIdOf = (raw: string) => parseId(raw, "customer_id", "customer_id_required");
const descriptionOf = (raw: string) => (raw === "" ? null : parseText(raw, "description", DESCRIPTION_LENGTH_MAX));

export function parseCapacity(r: GrantCapacityRequest | RevokeCapacityRequest, projectId: bigint): CapacityInput {
  return {
    projectId,
    customerId: customerIdOf(r.customerId),
    wallet: parseWallet(r.wallet),
    source: parseSource(r.source, DEFAULT_SLOT_SOURCE),
    amount: parseAmount(r.amount),
    idempotencyKey: parseOptionalId(r.idempotencyKey, "idempotency_key"),
    description: descriptionOf(r.description),
  };
}

export function parseClaim(r: ClaimRequest, projectId: bigint): ClaimInput {
  return {
    ...parseRelease(r, projectId),
    source: r.source === "" ? null : parseSource(r.source, DEFAULT_SLOT_SOURCE),
    amount: r.amount === undefined ? 1n : parseAmount(r.amount),
    description: descriptionOf(r.description),
  };
}

export function parseRelease(r: ReleaseRequest, projectId: bigint): ReleaseInput {
  return { projectId, customerId: customerIdOf(r.customerId), wallet: parseWallet(r.wallet), resourceId: parseResourceId(r.resourceId) };
}

export function parseListPools(r: ListPoolsRequest, projectId: bigint): ListPoolsInput {
  return { projectId, customerId: customerIdOf(r.customerId), wallet: r.wallet === "" ? null : parseWallet(r.wallet) };
}

const EVENT_TYPE: Record<SlotEventType, ProtoSlotEventType> = {
  GRANT_CAPACITY: ProtoSlotEventType.SLOT_EVENT_TYPE_GRANT_CAPACITY,
  REVOKE_CAPACITY: ProtoSlotEventType.SLOT_EVENT_TYPE_REVOKE_CAPACITY,
  CLAIM: ProtoSlotEventType.SLOT_EVENT_TYPE_CLAIM,
  RELEASE: ProtoSlotEventType.SLOT_EVENT_TYPE_RELEASE,
};

function eventTypeOf(raw: ProtoSlotEventType): SlotEventType {
  const found = (Object.keys(EVENT_TYPE) as SlotEventType[]).find((t) => EVENT_TYPE[t] === raw);
  if (!found) throw new BillingError("invalid_argument", "types holds an unknown value.", { field: "types", value: raw });
  return found;
}

export function parseListSlotEvents(r: ListSlotEventsRequest, projectId: bigint): SlotEventQuery {
  if (r.types.length > EVENT_FILTER_VALUES_MAX || r.sources.length > EVENT_FILTER_VALUES_MAX) {
    throw new BillingError("invalid_argument", `types and sources hold at most ${EVENT_FILTER_VALUES_MAX} values.`, {
      field: r.types.length > EVENT_FILTER_VALUES_MAX ? "types" : "sources",
    });
  }
  return {
    projectId,
    customerId: customerIdOf(r.customerId),
    wallet: r.wallet === "" ? null : parseWallet(r.wallet),
    resourceId: r.resourceId === "" ? null : parseResourceId(r.resourceId),
    types: [...new Set(r.types.map(eventTypeOf))].sort(),
    sources: [...new Set(r.sources.map((s) => parseSource(s, DEFAULT_SLOT_SOURCE)))].sort(),
    fromMs: parseTimeBound(r.fromAt, "from_at", "invalid_from_at"),
    toMs: parseTimeBound(r.toAt, "to_at", "invalid_to_at"),
    cursor: r.cursor === "" ? null : r.cursor,
    limit: parseLimit(r.limit ?? null),
  };
}

const POOL_STATUS: Record<PoolStatus, ProtoPoolStatus> = {
  ACTIVE: ProtoPoolStatus.POOL_STATUS_ACTIVE,
  SUSPENDED: ProtoPoolStatus.POOL_STATUS_SUSPENDED,
};

export const pool = (p: PoolView): Pool => ({
  poolId: p.poolId.toString(),
  wallet: p.wallet,
  source: p.source,
  capacity: p.capacity,
  inUse: p.inUse,
  available: p.available,
  status: POOL_STATUS[p.status],
});

const orUndefined = <T>(value: T | null): T | undefined => (value === null ? undefined : value);

export const slotEventsResponse = (page: EventPage<SlotEventView>): ListSlotEventsResponse => ({
  items: page.items.map((e) => ({
    id: e.id.toString(),
    type: EVENT_TYPE[e.type],
    wallet: e.wallet,
    source: e.source,
    amount: e.amount,
    resourceId: orUndefined(e.resourceId),
    description: orUndefined(e.description),
    idempotencyKey: orUndefined(e.idempotencyKey),
    createdAt: timestamp(e.createdAtMs),
    poolId: e.poolId.toString(),
    holdingId: e.holdingId === null ? undefined : e.holdingId.toString(),
  })),
  totalCount: BigInt(page.totalCount),
  hasMore: page.hasMore,
  nextCursor: page.nextCursor ?? "",
});
