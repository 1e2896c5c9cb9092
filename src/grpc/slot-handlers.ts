import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { SlotServiceServer } from "../../gen/velobase/billing/v1/slots.js";
import type { BillingContext } from "../operations/context.js";
import { grantCapacity, revokeCapacity } from "../operations/slots/capacity.js";
import { claimSlot, releaseSlot } from "../operations/slots/claim.js";
import { listPools, listSlotEvents } from "../operations/slots/list-slots.js";
import { auditOf } from "../domain/caller.js";
import type { HoldingResult, PoolResult } from "../domain/slots.js";
import * as slot from "./slot-messages.js";
import { type GuardedEnvironment, guardedIn } from "./unary.js";

const poolAnswer = (r: PoolResult) => ({ pool: slot.pool(r.pool), isIdempotentReplay: r.isIdempotentReplay });
const holdingAnswer = (r: HoldingResult) => ({
  pool: slot.pool(r.pool),
  holdingId: r.holdingId.toString(),
  isIdempotentReplay: r.isIdempotentReplay,
});

/** SlotService: each handler parses the request, runs one operation, formats the answer. */
export function slotHandlers(ctx: BillingContext, env: GuardedEnvironment): SlotServiceServer & UntypedServiceImplementation {
  const call = guardedIn(ctx, env);
  return {
    grantCapacity: call("GrantCapacity", "write", async (r, caller, context) =>
      poolAnswer(await grantCapacity(context, { ...slot.parseCapacity(r, caller.projectId), ...auditOf(caller) })),
    ),
    revokeCapacity: call("RevokeCapacity", "write", async (r, caller, context) =>
      poolAnswer(await revokeCapacity(context, { ...slot.parseCapacity(r, caller.projectId), ...auditOf(caller) })),
    ),
    claim: call("Claim", "write", async (r, caller, context) =>
      holdingAnswer(await claimSlot(context, { ...slot.parseClaim(r, caller.projectId), ...auditOf(caller) })),
    ),
    release: call("Release", "write", async (r, caller, context) =>
      holdingAnswer(await releaseSlot(context, { ...slot.parseRelease(r, caller.projectId), ...auditOf(caller) })),
    ),
    listPools: call("ListPools", "read", async (r, caller, context) => ({
      pools: (await listPools(context, slot.parseListPools(r, caller.projectId))).map(slot.pool),
    })),
    listSlotEvents: call("ListSlotEvents", "read", async (r, caller, context) =>
      slot.slotEventsResponse(await listSlotEvents(context, slot.parseListSlotEvents(r, caller.projectId))),
    ),
  };
}
