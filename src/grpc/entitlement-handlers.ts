import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { EntitlementServiceServer } from "../../gen/velobase/billing/v1/entitlements.js";
import { DEFAULT_PROJECT_ID, type BillingContext } from "../billing/context.js";
import { getEntitlement, listEntitlementEvents, listEntitlements } from "../billing/entitlements/read-entitlements.js";
import { removeEntitlement, setEntitlement } from "../billing/entitlements/write-entitlements.js";
import * as message from "./entitlement-messages.js";
import { unary, type CallEnvironment } from "./unary.js";

/** EntitlementService: each handler parses the request, runs one operation, formats the answer. */
export function entitlementHandlers(ctx: BillingContext, env: CallEnvironment): EntitlementServiceServer & UntypedServiceImplementation {
  // The one place the caller's project is decided (the authenticated key's, once keys exist).
  const project = DEFAULT_PROJECT_ID;
  return {
    setEntitlement: unary(env, "SetEntitlement", async (r) =>
      message.setEntitlementResponse(await setEntitlement(ctx, message.parseSetEntitlement(r, project))),
    ),
    getEntitlement: unary(env, "GetEntitlement", async (r) => {
      const found = await getEntitlement(ctx, message.parseTarget(r, project));
      return { entitlement: found === null ? undefined : message.entitlement(found) };
    }),
    listEntitlements: unary(env, "ListEntitlements", async (r) => ({
      items: (await listEntitlements(ctx, message.parseListEntitlements(r, project))).map(message.entitlement),
    })),
    removeEntitlement: unary(env, "RemoveEntitlement", async (r) => {
      const removed = await removeEntitlement(ctx, message.parseTarget(r, project));
      return { removed: removed.removed, oldValue: removed.oldValue ?? undefined };
    }),
    listEntitlementEvents: unary(env, "ListEntitlementEvents", async (r) =>
      message.entitlementEventsResponse(await listEntitlementEvents(ctx, message.parseListEntitlementEvents(r, project))),
    ),
  };
}
