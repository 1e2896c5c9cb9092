import Type, { type Static } from "typebox";
import { type BalanceAlert, parseThreshold } from "../../domain/balance-alerts.js";
import { parseLimit, parseClosedValues } from "../../domain/event-query.js";
import { eventJson, EVENT_TYPES, type FeedEvent } from "../../domain/events.js";
import {
  ALERT_PAGE_SIZE_DEFAULT,
  EVENT_FILTER_VALUES_MAX,
  EVENT_LIMIT_DEFAULT,
  EVENT_LIMIT_MAX,
  PAGE_SIZE_MAX,
} from "../../domain/limits.js";
import { parseCreditType } from "../../domain/validation.js";
import { deleteAlert, listAlerts, setAlert, type AlertTarget } from "../../operations/alerts.js";
import { listEvents } from "../../operations/events/read-events.js";
import { commaList, customerIdOf, withCursorField } from "../fields.js";
import { callerOf, contextOf, type HttpApp } from "../http-app.js";
import { amountFromJson, amountToJson } from "../json-amount.js";
import { msToIso } from "../iso-time.js";
import { Amount, Id, IsoOutput, Nullable, responses } from "../schemas.js";

// Events

const BalanceJson = Type.Object({ total: Type.Integer(), used: Type.Integer(), frozen: Type.Integer(), available: Type.Integer() });

const EntryJson = Type.Object({
  sequence: Type.Integer({ description: "The customer's sequence (1, 2, 3… in commit order, gapless): identifies the entry." }),
  operation: Type.String(),
  amount: Type.Integer(),
  account_id: Type.String(),
  credit_type: Type.String(),
  balance_after: BalanceJson,
});

const EventItem = Type.Object({
  id: Type.String({ description: "Unique across deployments (the NATS Nats-Msg-Id)." }),
  cursor: Type.String({ description: "Resume after this event with ?cursor=." }),
  type: Type.String({ description: `One of: ${EVENT_TYPES.join(", ")}.` }),
  customer_id: Nullable(Type.String()),
  transaction_id: Nullable(Type.String()),
  entries: Type.Array(EntryJson, {
    description: "The write's ledger entries in sequence order (none for slot, entitlement and alert events).",
  }),
  balance_after: Nullable(BalanceJson),
  data: Type.Record(Type.String(), Type.String(), { description: "The facts of a slot, entitlement or alert event." }),
  created_at: IsoOutput,
});

const EventsQuery = Type.Object({
  cursor: Type.Optional(
    Type.String({ description: "An event's cursor (or next_cursor): the events after it. Absent: from the oldest kept." }),
  ),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: EVENT_LIMIT_MAX, default: EVENT_LIMIT_DEFAULT })),
  customer_id: Type.Optional(Id("Only this customer's events.")),
  types: Type.Optional(Type.String({ description: "Comma-separated event types.", examples: ["ledger.deduct,balance.low"] })),
});

const EventsReply = Type.Object({
  items: Type.Array(EventItem, { description: "In commit order (oldest first)." }),
  next_cursor: Nullable(
    Type.String({ description: "Where to read on from (the last item's cursor, or the cursor sent); null when there is nothing yet." }),
  ),
  has_more: Type.Boolean(),
});

const eventItem = (e: FeedEvent): Static<typeof EventItem> => eventJson(e, "number", "project") as Static<typeof EventItem>;

// Alerts

const AlertJson = Type.Object({
  alert_id: Type.String(),
  customer_id: Type.String(),
  credit_type: Nullable(Type.String({ description: "null: every credit type." })),
  threshold: Type.Integer(),
  state: Type.Enum(["armed", "low", "depleted"]),
  created_at: IsoOutput,
  updated_at: IsoOutput,
});

const SetAlertBody = Type.Object({
  customer_id: Id("The customer (must exist)."),
  credit_type: Type.Optional(Nullable(Type.String({ description: "Only this credit type's balance; absent or null: every type." }))),
  threshold: Amount("balance.low when available goes below it."),
});

const alertJson = (a: BalanceAlert): Static<typeof AlertJson> => ({
  alert_id: a.alertId.toString(),
  customer_id: a.customerId,
  credit_type: a.creditType,
  threshold: amountToJson(a.threshold),
  state: a.state,
  created_at: msToIso(a.createdAtMs),
  updated_at: msToIso(a.updatedAtMs),
});

const creditTypeOf = (raw: string | null | undefined): string | null =>
  raw === undefined || raw === null || raw === "" ? null : parseCreditType(raw, null);

/** GET /v1/events (read keys); /v1/alerts: set and delete (write keys), list (read). */
export function registerEventRoutes(app: HttpApp): void {
  registerEventReads(app);
  registerAlertRoutes(app);
}

const read = { access: "read" as const };
const tags = ["alerts"];

function registerEventReads(app: HttpApp): void {
  app.get(
    "/v1/events",
    {
      schema: {
        summary: "The project's events in commit order, after a cursor",
        tags: ["events"],
        querystring: EventsQuery,
        response: responses(EventsReply),
      },
      config: read,
    },
    async (request) => {
      const { query } = request;
      const page = await listEvents(
        contextOf(request),
        {
          projectId: callerOf(request).projectId,
          cursor: query.cursor ?? "",
          customerId: query.customer_id === undefined ? null : customerIdOf(query.customer_id),
          types: parseClosedValues(commaList(query.types), EVENT_TYPES, "types", EVENT_FILTER_VALUES_MAX),
        },
        parseLimit(query.limit ?? null),
      );
      return { items: page.items.map(eventItem), next_cursor: page.nextCursor, has_more: page.hasMore };
    },
  );
}

function registerAlertRoutes(app: HttpApp): void {
  app.post(
    "/v1/alerts",
    {
      schema: {
        summary: "Set a customer's low-balance alert (create or replace)",
        tags,
        body: SetAlertBody,
        response: responses(Type.Object({ alert: AlertJson, created: Type.Boolean() })),
      },
      // A threshold is an amount: the amount's codes (as over gRPC).
      config: {
        fieldCodes: {
          threshold: {
            required: "amount_must_be_positive",
            invalid: "amount_must_be_positive",
            byKeyword: { maximum: "invalid_argument" },
            message: "threshold must be a positive integer.",
          },
        },
      },
    },
    async (request) => {
      const body = request.body;
      const result = await setAlert(contextOf(request), {
        projectId: callerOf(request).projectId,
        customerId: customerIdOf(body.customer_id),
        creditType: creditTypeOf(body.credit_type),
        threshold: parseThreshold(amountFromJson(body.threshold)),
      });
      return { alert: alertJson(result.alert), created: result.created };
    },
  );

  app.get(
    "/v1/alerts",
    {
      schema: {
        summary: "The project's alerts (one customer's with ?customer_id=), by customer then credit type",
        tags,
        querystring: Type.Object({
          customer_id: Type.Optional(Id("Only this customer's alerts.")),
          limit: Type.Optional(
            Type.Integer({ minimum: 1, maximum: PAGE_SIZE_MAX, default: ALERT_PAGE_SIZE_DEFAULT, description: "Alerts per page." }),
          ),
          cursor: Type.Optional(Type.String({ description: "next_cursor of the previous page." })),
        }),
        response: responses(Type.Object({ items: Type.Array(AlertJson), next_cursor: Nullable(Type.String()), has_more: Type.Boolean() })),
      },
      config: read,
    },
    async (request) => {
      const { query } = request;
      const page = await withCursorField(
        listAlerts(contextOf(request), {
          projectId: callerOf(request).projectId,
          customerId: query.customer_id === undefined ? null : customerIdOf(query.customer_id),
          pageSize: query.limit ?? ALERT_PAGE_SIZE_DEFAULT,
          pageToken: query.cursor === undefined || query.cursor === "" ? null : query.cursor,
        }),
      );
      const more = page.nextPageToken !== "";
      return { items: page.alerts.map(alertJson), next_cursor: more ? page.nextPageToken : null, has_more: more };
    },
  );

  app.delete(
    "/v1/alerts/:customer_id",
    {
      schema: {
        summary: "Delete a customer's alert (?credit_type= for one credit type's)",
        tags,
        params: Type.Object({ customer_id: Id("The customer (URL-encoded).") }),
        querystring: Type.Object({ credit_type: Type.Optional(Type.String()) }),
        response: responses(Type.Object({ deleted: Type.Boolean() })),
      },
    },
    async (request) => {
      const target: AlertTarget = {
        projectId: callerOf(request).projectId,
        customerId: customerIdOf(request.params.customer_id),
        creditType: creditTypeOf(request.query.credit_type),
      };
      return { deleted: await deleteAlert(contextOf(request), target) };
    },
  );
}
