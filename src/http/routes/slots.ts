import Type, { type Static } from "typebox";
import { grantCapacity, revokeCapacity, type CapacityInput } from "../../operations/slots/capacity.js";
import { claimSlot, releaseSlot, type ReleaseInput } from "../../operations/slots/claim.js";
import { listPools, listSlotEvents, type SlotEventView } from "../../operations/slots/list-slots.js";
import { parseClosedValues } from "../../domain/event-query.js";
import { DEFAULT_SLOT_SOURCE, DESCRIPTION_LENGTH_MAX, EVENT_FILTER_VALUES_MAX, WALLET_PATTERN } from "../../domain/limits.js";
import { auditOf } from "../../domain/caller.js";
import {
  parseResourceId,
  parseWallet,
  POOL_STATUSES,
  SLOT_EVENT_TYPES,
  type HoldingResult,
  type PoolResult,
  type PoolView,
} from "../../domain/slots.js";
import { parseAmount, parseSource, parseText } from "../../domain/validation.js";
import { BillingError } from "../../errors/billing-error.js";
import { eventPageJson, EventPageReply, EventQueryFields, eventWindowOf } from "../event-page.js";
import { commaList, customerIdOf, idempotencyKeyOf, withoutNulls, type NullsAbsent } from "../fields.js";
import { callerOf, contextOf, type HttpApp } from "../http-app.js";
import { amountFromJson, amountToJson } from "../json-amount.js";
import { msToIso } from "../iso-time.js";
import type { FieldCodeOverrides } from "../schema-errors.js";
import { Amount, Description, Id, IdempotentReplay, IsoOutput, Nullable, OptionalNullable, responses, Source } from "../schemas.js";

// A slot wallet names a kind of resource ("ip", "seat"), not a credit wallet: its own alphabet,
// no default (an absent one is wallet_required), and a malformed one is invalid_argument (as over
// gRPC), not invalid_credit_types.
const SlotWallet = Type.String({
  pattern: WALLET_PATTERN.source,
  description: 'The kind of resource ("ip", "seat"): 1-64 characters of [A-Za-z0-9_.:@-].',
});
const fieldCodes: FieldCodeOverrides = { wallet: { required: "wallet_required", invalid: "invalid_argument" } };

// Request bodies

const CapacityBody = Type.Object({
  customer_id: Id("The customer; a grant creates it on first use."),
  wallet: SlotWallet,
  source: OptionalNullable({ ...Source, description: 'The pool\'s source within the wallet (default "default").' }),
  amount: Amount("Capacity units: a positive integer."),
  idempotency_key: OptionalNullable(Id("Retries with the same key replay the first answer (also the Idempotency-Key header).")),
  description: OptionalNullable(Description),
});

const ReleaseBody = Type.Object({
  customer_id: Id("The customer."),
  wallet: SlotWallet,
  resource_id: Id("What holds the slot (an IP, a seat's user, a job id)."),
});

const ClaimBody = Type.Object({
  ...ReleaseBody.properties,
  source: OptionalNullable({
    ...Source,
    description: 'Claim from this pool only (default: the wallet\'s pools, "default" first, then oldest).',
  }),
  amount: OptionalNullable(Amount("Units to hold (default 1).")),
  description: OptionalNullable(Description),
});

// Replies

const PoolFields = {
  pool_id: Type.String(),
  wallet: Type.String(),
  source: Type.String(),
  capacity: Type.Integer(),
  in_use: Type.Integer(),
  available: Type.Integer({ description: "capacity - in_use." }),
  status: Type.Enum(POOL_STATUSES),
};
const PoolReply = Type.Object(PoolFields);
const CapacityReply = Type.Object({ ...PoolFields, is_idempotent_replay: IdempotentReplay });
const HoldingReply = Type.Object({
  ...PoolFields,
  holding_id: Type.String({ description: "The same for every claim of a held resource." }),
  is_idempotent_replay: IdempotentReplay,
});
const PoolsReply = Type.Object({ pools: Type.Array(PoolReply, { description: 'In claim order: "default" first, then oldest.' }) });

const SlotEventItem = Type.Object({
  id: Type.String(),
  type: Type.Enum(SLOT_EVENT_TYPES),
  wallet: Type.String(),
  source: Type.String(),
  amount: Type.Integer(),
  resource_id: Nullable(Type.String()),
  description: Nullable(Type.String()),
  idempotency_key: Nullable(Type.String()),
  pool_id: Type.String(),
  holding_id: Nullable(Type.String()),
  created_at: IsoOutput,
});

const poolJson = (p: PoolView): Static<typeof PoolReply> => ({
  pool_id: p.poolId.toString(),
  wallet: p.wallet,
  source: p.source,
  capacity: amountToJson(p.capacity),
  in_use: amountToJson(p.inUse),
  available: amountToJson(p.available),
  status: p.status,
});

const capacityReply = (r: PoolResult): Static<typeof CapacityReply> => ({
  ...poolJson(r.pool),
  is_idempotent_replay: r.isIdempotentReplay,
});

const holdingReply = (r: HoldingResult): Static<typeof HoldingReply> => ({
  ...poolJson(r.pool),
  holding_id: r.holdingId.toString(),
  is_idempotent_replay: r.isIdempotentReplay,
});

const slotEventJson = (e: SlotEventView): Static<typeof SlotEventItem> => ({
  id: e.id.toString(),
  type: e.type,
  wallet: e.wallet,
  source: e.source,
  amount: amountToJson(e.amount),
  resource_id: e.resourceId,
  description: e.description,
  idempotency_key: e.idempotencyKey,
  pool_id: e.poolId.toString(),
  holding_id: e.holdingId === null ? null : e.holdingId.toString(),
  created_at: msToIso(e.createdAtMs),
});

// Read routes

const CustomerParams = Type.Object({ customer_id: Id("The customer (URL-encoded).") });

const PoolsQuery = Type.Object({ wallet: Type.Optional({ ...SlotWallet, description: "Only this wallet's pools." }) });

const SlotEventsQuery = Type.Object({
  wallet: Type.Optional({ ...SlotWallet, description: "Only this wallet's events." }),
  resource_id: Type.Optional(Id("Only this resource's claims and releases.")),
  types: Type.Optional(Type.String({ description: `Comma-separated: ${SLOT_EVENT_TYPES.join(", ")}.`, examples: ["CLAIM,RELEASE"] })),
  sources: Type.Optional(Type.String({ description: "Comma-separated sources.", examples: ["default,promo"] })),
  ...EventQueryFields,
});

// Parsing

const descriptionOf = (raw: string | undefined) =>
  raw === undefined || raw === "" ? null : parseText(raw, "description", DESCRIPTION_LENGTH_MAX);

function capacityInputOf(
  body: NullsAbsent<Static<typeof CapacityBody>>,
  projectId: bigint,
  header: string | string[] | undefined,
): CapacityInput {
  return {
    projectId,
    customerId: customerIdOf(body.customer_id),
    wallet: parseWallet(body.wallet),
    source: parseSource(body.source ?? "", DEFAULT_SLOT_SOURCE),
    amount: parseAmount(amountFromJson(body.amount)),
    idempotencyKey: idempotencyKeyOf(body.idempotency_key, header),
    description: descriptionOf(body.description),
  };
}

const releaseInputOf = (body: Static<typeof ReleaseBody>, projectId: bigint): ReleaseInput => ({
  projectId,
  customerId: customerIdOf(body.customer_id),
  wallet: parseWallet(body.wallet),
  resourceId: parseResourceId(body.resource_id),
});

/** `sources=a,b`: each a source, at most EVENT_FILTER_VALUES_MAX, deduplicated and sorted. */
function sourcesOf(raw: string | undefined): string[] {
  const sources = commaList(raw);
  if (sources.length > EVENT_FILTER_VALUES_MAX) {
    throw new BillingError("invalid_argument", `sources holds at most ${EVENT_FILTER_VALUES_MAX} values.`, { field: "sources" });
  }
  return [...new Set(sources.map((s) => parseSource(s, DEFAULT_SLOT_SOURCE)))].sort();
}

/** Slot routes: grant, revoke, claim, release (write keys); pools and events (read). */
const tags = ["slots"];
const read = { fieldCodes, access: "read" as const };

export function registerSlotRoutes(app: HttpApp): void {
  registerSlotWrites(app);
  registerSlotReads(app);
}

function registerSlotWrites(app: HttpApp): void {
  const write = { fieldCodes };

  app.post(
    "/v1/slot/grant",
    {
      schema: {
        summary: "Grant capacity (creates the customer and the pool)",
        tags,
        body: CapacityBody,
        response: responses(CapacityReply),
      },
      config: write,
    },
    async (request) => {
      const input = capacityInputOf(withoutNulls(request.body), callerOf(request).projectId, request.headers["idempotency-key"]);
      return capacityReply(await grantCapacity(contextOf(request), { ...input, ...auditOf(callerOf(request)) }));
    },
  );

  app.post(
    "/v1/slot/revoke",
    {
      schema: { summary: "Revoke capacity (never below in_use)", tags, body: CapacityBody, response: responses(CapacityReply) },
      config: write,
    },
    async (request) => {
      const input = capacityInputOf(withoutNulls(request.body), callerOf(request).projectId, request.headers["idempotency-key"]);
      return capacityReply(await revokeCapacity(contextOf(request), { ...input, ...auditOf(callerOf(request)) }));
    },
  );

  app.post(
    "/v1/slot/claim",
    {
      schema: {
        summary: "Claim a slot for a resource (idempotent per resource)",
        tags,
        body: ClaimBody,
        response: responses(HoldingReply),
      },
      config: write,
    },
    async (request) => {
      const body = withoutNulls(request.body);
      const result = await claimSlot(contextOf(request), {
        ...releaseInputOf(body, callerOf(request).projectId),
        ...auditOf(callerOf(request)),
        source: body.source === undefined || body.source === "" ? null : parseSource(body.source, DEFAULT_SLOT_SOURCE),
        amount: body.amount === undefined ? 1n : parseAmount(amountFromJson(body.amount)),
        description: descriptionOf(body.description),
      });
      return holdingReply(result);
    },
  );

  app.post(
    "/v1/slot/release",
    {
      schema: { summary: "Release a resource's slot (twice: a replay)", tags, body: ReleaseBody, response: responses(HoldingReply) },
      config: write,
    },
    async (request) =>
      holdingReply(
        await releaseSlot(contextOf(request), {
          ...releaseInputOf(request.body, callerOf(request).projectId),
          ...auditOf(callerOf(request)),
        }),
      ),
  );
}

function registerSlotReads(app: HttpApp): void {
  app.get(
    "/v1/slot/customer/:customer_id",
    {
      schema: { summary: "A customer's pools", tags, params: CustomerParams, querystring: PoolsQuery, response: responses(PoolsReply) },
      config: read,
    },
    async (request) => {
      const { wallet } = request.query;
      const pools = await listPools(contextOf(request), {
        projectId: callerOf(request).projectId,
        customerId: customerIdOf(request.params.customer_id),
        wallet: wallet === undefined ? null : parseWallet(wallet),
      });
      return { pools: pools.map(poolJson) };
    },
  );

  app.get(
    "/v1/slot/events/:customer_id",
    {
      schema: {
        summary: "A customer's slot events, newest first",
        tags,
        params: CustomerParams,
        querystring: SlotEventsQuery,
        response: responses(EventPageReply(SlotEventItem)),
      },
      config: read,
    },
    async (request) => {
      const { query } = request;
      const page = await listSlotEvents(contextOf(request), {
        projectId: callerOf(request).projectId,
        customerId: customerIdOf(request.params.customer_id),
        wallet: query.wallet === undefined ? null : parseWallet(query.wallet),
        resourceId: query.resource_id === undefined ? null : parseResourceId(query.resource_id),
        types: parseClosedValues(commaList(query.types), SLOT_EVENT_TYPES, "types", EVENT_FILTER_VALUES_MAX),
        sources: sourcesOf(query.sources),
        ...eventWindowOf(query),
      });
      return eventPageJson(page, slotEventJson);
    },
  );
}
