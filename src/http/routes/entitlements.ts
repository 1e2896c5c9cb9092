import Type, { type Static } from "typebox";
import {
  getEntitlement,
  listEntitlementEvents,
  listEntitlements,
  type EntitlementEventView,
} from "../../operations/entitlements/read-entitlements.js";
import { removeEntitlement, setEntitlement, type EntitlementTarget } from "../../operations/entitlements/write-entitlements.js";
import {
  ENTITLEMENT_EVENT_TYPES,
  parseEntitlementValue,
  parseFeatureKey,
  type EntitlementWithStatus,
  type RemoveEntitlementResult,
  type SetEntitlementResult,
} from "../../domain/entitlements.js";
import { parseClosedValues } from "../../domain/event-query.js";
import {
  DESCRIPTION_LENGTH_MAX,
  ENTITLEMENT_VALUE_LENGTH_MAX,
  EVENT_FILTER_VALUES_MAX,
  FEATURE_KEYS_PER_REQUEST_MAX,
} from "../../domain/limits.js";
import { auditOf } from "../../domain/caller.js";
import { parseSource, parseText } from "../../domain/validation.js";
import { BillingError } from "../../errors/billing-error.js";
import { eventPageJson, EventPageReply, EventQueryFields, eventWindowOf } from "../event-page.js";
import { commaList, customerIdOf, metadataOf, withoutNulls } from "../fields.js";
import { callerOf, contextOf, type HttpApp } from "../http-app.js";
import { msToIso, msToIsoOrNull, parseIsoField } from "../iso-time.js";
import { Description, Id, IsoInput, IsoOutput, MetadataInput, Nullable, OptionalNullable, responses, Source } from "../schemas.js";

// Request bodies

const TargetFields = {
  customer_id: Id("The customer."),
  feature_key: Id('The feature ("model", "max_projects").'),
};

const SetBody = Type.Object({
  ...TargetFields,
  value: Type.String({ maxLength: ENTITLEMENT_VALUE_LENGTH_MAX, description: "The customer's value of the feature: a non-empty string." }),
  valid_from: OptionalNullable(IsoInput("When it starts to apply (default: now).")),
  valid_until: OptionalNullable(IsoInput("When it stops applying (default: never); after valid_from; may be past.")),
  source: OptionalNullable({ ...Source, description: 'Where it came from ("plan", "admin").' }),
  description: OptionalNullable(Description),
  metadata: OptionalNullable(MetadataInput),
});

const RemoveBody = Type.Object(TargetFields);

// Replies: nulls are sent as JSON null, never omitted.

const EntitlementFields = {
  entitlement_id: Type.String(),
  feature_key: Type.String(),
  value: Type.String(),
  valid_from: Nullable(IsoOutput),
  valid_until: Nullable(IsoOutput),
  source: Nullable(Type.String()),
  description: Nullable(Type.String()),
  metadata: Nullable(Type.Record(Type.String(), Type.Unknown())),
  is_active: Type.Boolean({ description: "Started and not expired." }),
};
const EntitlementReply = Type.Object(EntitlementFields);

const SetReply = Type.Object({
  ...EntitlementFields,
  is_created: Type.Boolean({ description: "True the first time the feature is set (or after a remove)." }),
  old_value: Nullable(Type.String({ description: "The value it replaced; null on create." })),
});

const GetReply = Type.Object({ entitlement: Nullable(EntitlementReply) });
const ListReply = Type.Object({ items: Type.Array(EntitlementReply, { description: "By feature_key." }) });
const RemoveReply = Type.Object({ removed: Type.Boolean(), old_value: Nullable(Type.String()) });

const EntitlementEventItem = Type.Object({
  id: Type.String(),
  feature_key: Type.String(),
  type: Type.Enum(ENTITLEMENT_EVENT_TYPES),
  old_value: Nullable(Type.String()),
  new_value: Nullable(Type.String()),
  source: Nullable(Type.String()),
  description: Nullable(Type.String()),
  created_at: IsoOutput,
});

const entitlementJson = (e: EntitlementWithStatus): Static<typeof EntitlementReply> => ({
  entitlement_id: e.entitlementId.toString(),
  feature_key: e.featureKey,
  value: e.value,
  valid_from: msToIsoOrNull(e.validFromMs),
  valid_until: msToIsoOrNull(e.validUntilMs),
  source: e.source,
  description: e.description,
  metadata: e.metadata === null ? null : { ...e.metadata },
  is_active: e.isActive,
});

const setReply = (r: SetEntitlementResult): Static<typeof SetReply> => ({
  ...entitlementJson(r.entitlement),
  is_created: r.isCreated,
  old_value: r.oldValue,
});

const removeReply = (r: RemoveEntitlementResult): Static<typeof RemoveReply> => ({ removed: r.removed, old_value: r.oldValue });

const eventJson = (e: EntitlementEventView): Static<typeof EntitlementEventItem> => ({
  id: e.id.toString(),
  feature_key: e.featureKey,
  type: e.type,
  old_value: e.oldValue,
  new_value: e.newValue,
  source: e.source,
  description: e.description,
  created_at: msToIso(e.createdAtMs),
});

// Read routes

const CustomerParams = Type.Object({ customer_id: Id("The customer (URL-encoded).") });
const TargetParams = Type.Object({
  customer_id: Id("The customer (URL-encoded)."),
  feature_key: Id('The feature (URL-encoded). One named "events" is read through the list route (feature_keys=events).'),
});

const ListQuery = Type.Object({
  feature_keys: Type.Optional(Type.String({ description: "Comma-separated: only these features.", examples: ["model,max_projects"] })),
  include_expired: Type.Optional(Type.Boolean({ default: false, description: "Also the expired ones (is_active false)." })),
});

const EventsQuery = Type.Object({
  feature_key: Type.Optional(Id("Only this feature's events.")),
  types: Type.Optional(Type.String({ description: `Comma-separated: ${ENTITLEMENT_EVENT_TYPES.join(", ")}.`, examples: ["SET"] })),
  ...EventQueryFields,
});

// Parsing

const targetOf = (fields: { customer_id: string; feature_key: string }, projectId: bigint): EntitlementTarget => ({
  projectId,
  customerId: customerIdOf(fields.customer_id),
  featureKey: parseFeatureKey(fields.feature_key),
});

/** `feature_keys=a,b`: at most FEATURE_KEYS_PER_REQUEST_MAX, deduplicated and sorted. */
function featureKeysOf(raw: string | undefined): string[] {
  const keys = commaList(raw);
  if (keys.length > FEATURE_KEYS_PER_REQUEST_MAX) {
    throw new BillingError("invalid_argument", `feature_keys holds at most ${FEATURE_KEYS_PER_REQUEST_MAX} keys.`, {
      field: "feature_keys",
    });
  }
  return [...new Set(keys.map((k) => parseFeatureKey(k, "feature_keys")))].sort();
}

const tags = ["entitlements"];
const read = { access: "read" as const };

/**
 * Entitlement routes: set and remove (write keys); one, the list and the events (read).
 * `GET /v1/entitlement/{customer_id}/events` is the events route: fastify's router prefers a
 * static segment over a parameter, so a feature key named "events" cannot be read one by one;
 * the list route reads it (`?feature_keys=events`).
 */
export function registerEntitlementRoutes(app: HttpApp): void {
  registerEntitlementWrites(app);
  registerEntitlementReads(app);
}

function registerEntitlementWrites(app: HttpApp): void {
  app.post(
    "/v1/entitlement/set",
    { schema: { summary: "Set a feature's value (create or replace)", tags, body: SetBody, response: responses(SetReply) } },
    async (request) => {
      const body = withoutNulls(request.body);
      const result = await setEntitlement(contextOf(request), {
        ...targetOf(body, callerOf(request).projectId),
        ...auditOf(callerOf(request)),
        value: parseEntitlementValue(body.value),
        validFromMs: parseIsoField(body.valid_from, "valid_from", "invalid_valid_from"),
        validUntilMs: parseIsoField(body.valid_until, "valid_until", "invalid_valid_until"),
        source: body.source === undefined || body.source === "" ? null : parseSource(body.source, ""),
        description: body.description === undefined ? null : parseText(body.description, "description", DESCRIPTION_LENGTH_MAX),
        metadata: body.metadata === undefined ? null : metadataOf(body.metadata),
      });
      return setReply(result);
    },
  );

  app.post(
    "/v1/entitlement/remove",
    { schema: { summary: "Remove a feature's value", tags, body: RemoveBody, response: responses(RemoveReply) } },
    async (request) =>
      removeReply(
        await removeEntitlement(contextOf(request), {
          ...targetOf(request.body, callerOf(request).projectId),
          ...auditOf(callerOf(request)),
        }),
      ),
  );
}

function registerEntitlementReads(app: HttpApp): void {
  app.get(
    "/v1/entitlement/:customer_id/events",
    {
      schema: {
        summary: "A customer's entitlement events, newest first",
        tags,
        params: CustomerParams,
        querystring: EventsQuery,
        response: responses(EventPageReply(EntitlementEventItem)),
      },
      config: read,
    },
    async (request) => {
      const { query } = request;
      const page = await listEntitlementEvents(contextOf(request), {
        projectId: callerOf(request).projectId,
        customerId: customerIdOf(request.params.customer_id),
        featureKey: query.feature_key === undefined ? null : parseFeatureKey(query.feature_key),
        types: parseClosedValues(commaList(query.types), ENTITLEMENT_EVENT_TYPES, "types", EVENT_FILTER_VALUES_MAX),
        ...eventWindowOf(query),
      });
      return eventPageJson(page, eventJson);
    },
  );

  app.get(
    "/v1/entitlement/:customer_id/:feature_key",
    {
      schema: {
        summary: "One entitlement (null when never set, removed or expired)",
        tags,
        params: TargetParams,
        response: responses(GetReply),
      },
      config: read,
    },
    async (request) => {
      const found = await getEntitlement(contextOf(request), targetOf(request.params, callerOf(request).projectId));
      return { entitlement: found === null ? null : entitlementJson(found) };
    },
  );

  app.get(
    "/v1/entitlement/:customer_id",
    {
      schema: {
        summary: "A customer's entitlements (expired ones on request)",
        tags,
        params: CustomerParams,
        querystring: ListQuery,
        response: responses(ListReply),
      },
      config: read,
    },
    async (request) => {
      const { query } = request;
      const items = await listEntitlements(contextOf(request), {
        projectId: callerOf(request).projectId,
        customerId: customerIdOf(request.params.customer_id),
        featureKeys: featureKeysOf(query.feature_keys),
        includeExpired: query.include_expired ?? false,
      });
      return { items: items.map(entitlementJson) };
    },
  );
}
