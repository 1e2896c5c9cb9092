import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { EntitlementServiceServer } from "../../gen/velobase/billing/v1/entitlements.js";
import type { BillingContext } from "../operations/context.js";
import { getEntitlement, listEntitlementEvents, listEntitlements } from "../operations/entitlements/read-entitlements.js";
import { removeEntitlement, setEntitlement } from "../operations/entitlements/write-entitlements.js";
import { auditOf } from "../domain/caller.js";
import * as message from "./entitlement-messages.js";
import { guarded, type GuardedEnvironment } from "./unary.js";

/** EntitlementService: each handler parses the request, runs one operation, formats the answer. */
export function entitlementHandlers(ctx: BillingContext, env: GuardedEnvironment): EntitlementServiceServer & UntypedServiceImplementation {
  return {
    setEntitlement: guarded(env, "SetEntitlement", "write", async (r, caller, signal) =>
      message.setEntitlementResponse(
        await setEntitlement({ ...ctx, signal }, { ...message.parseSetEntitlement(r, caller.projectId), ...auditOf(caller) }),
      ),
    ),
    getEntitlement: guarded(env, "GetEntitlement", "read", async (r, caller, signal) => {
      const found = await getEntitlement({ ...ctx, signal }, message.parseTarget(r, caller.projectId));
      return { entitlement: found === null ? undefined : message.entitlement(found) };
    }),
    listEntitlements: guarded(env, "ListEntitlements", "read", async (r, caller, signal) => ({
      items: (await listEntitlements({ ...ctx, signal }, message.parseListEntitlements(r, caller.projectId))).map(message.entitlement),
    })),
    removeEntitlement: guarded(env, "RemoveEntitlement", "write", async (r, caller, signal) => {
      const removed = await removeEntitlement({ ...ctx, signal }, { ...message.parseTarget(r, caller.projectId), ...auditOf(caller) });
      return { removed: removed.removed, oldValue: removed.oldValue ?? undefined };
    }),
    listEntitlementEvents: guarded(env, "ListEntitlementEvents", "read", async (r, caller, signal) =>
      message.entitlementEventsResponse(
        await listEntitlementEvents({ ...ctx, signal }, message.parseListEntitlementEvents(r, caller.projectId)),
      ),
    ),
  };
}
