import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { EntitlementServiceServer } from "../../gen/velobase/billing/v1/entitlements.js";
import type { BillingContext } from "../operations/context.js";
import { getEntitlement, listEntitlementEvents, listEntitlements } from "../operations/entitlements/read-entitlements.js";
import { removeEntitlement, setEntitlement } from "../operations/entitlements/write-entitlements.js";
import { auditOf } from "../domain/caller.js";
import * as message from "./entitlement-messages.js";
import { type GuardedEnvironment, guardedIn } from "./unary.js";

/** EntitlementService: each handler parses the request, runs one operation, formats the answer. */
export function entitlementHandlers(ctx: BillingContext, env: GuardedEnvironment): EntitlementServiceServer & UntypedServiceImplementation {
  const call = guardedIn(ctx, env);
  return {
    setEntitlement: call("SetEntitlement", "write", async (r, caller, context) =>
      message.setEntitlementResponse(
        await setEntitlement(context, { ...message.parseSetEntitlement(r, caller.projectId), ...auditOf(caller) }),
      ),
    ),
    getEntitlement: call("GetEntitlement", "read", async (r, caller, context) => {
      const found = await getEntitlement(context, message.parseTarget(r, caller.projectId));
      return { entitlement: found === null ? undefined : message.entitlement(found) };
    }),
    listEntitlements: call("ListEntitlements", "read", async (r, caller, context) => ({
      items: (await listEntitlements(context, message.parseListEntitlements(r, caller.projectId))).map(message.entitlement),
    })),
    removeEntitlement: call("RemoveEntitlement", "write", async (r, caller, context) => {
      const removed = await removeEntitlement(context, { ...message.parseTarget(r, caller.projectId), ...auditOf(caller) });
      return { removed: removed.removed, oldValue: removed.oldValue ?? undefined };
    }),
    listEntitlementEvents: call("ListEntitlementEvents", "read", async (r, caller, context) =>
      message.entitlementEventsResponse(await listEntitlementEvents(context, message.parseListEntitlementEvents(r, caller.projectId))),
    ),
  };
}
