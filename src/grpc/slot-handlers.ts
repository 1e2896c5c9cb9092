import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { SlotServiceServer } from "../../gen/velobase/billing/v1/slots.js";
import type { BillingContext } from "../operations/context.js";
import { grantCapacity, revokeCapacity } from "../operations/slots/capacity.js";
import { claimSlot, releaseSlot } from "../operations/slots/claim.js";
import { listPools, listSlotEvents } from "../operations/slots/list-slots.js";
import { auditOf } from "../domain/caller.js";
import type { HoldingResult, PoolResult } from "../domain/slots.js";
import * as slot from "./slot-messages.js";
import { guarded, type GuardedEnvironment } from "./unary.js";

const poolAnswer = (r: PoolResult) => ({ pool: slot.pool(r.pool), isIdempotentReplay: r.isIdempotentReplay });
const holdingAnswer = (r: HoldingResult) => ({
  pool: slot.pool(r.pool),
  holdingId: r.holdingId.toString(),
  isIdempotentReplay: r.isIdempotentReplay,
});

/** SlotService: each handler parses the request, runs one operation, formats the answer. */
export function slotHandlers(ctx: BillingContext, env: GuardedEnvironment): SlotServiceServer & UntypedServiceImplementation {
  return {
    grantCapacity: guarded(env, "GrantCapacity", "write", async (r, caller, signal) =>
      poolAnswer(await grantCapacity({ ...ctx, signal }, { ...slot.parseCapacity(r, caller.projectId), ...auditOf(caller) })),
    ),
    revokeCapacity: guarded(env, "RevokeCapacity", "write", async (r, caller, signal) =>
      poolAnswer(await revokeCapacity({ ...ctx, signal }, { ...slot.parseCapacity(r, caller.projectId), ...auditOf(caller) })),
    ),
    claim: guarded(env, "Claim", "write", async (r, caller, signal) =>
      holdingAnswer(await claimSlot({ ...ctx, signal }, { ...slot.parseClaim(r, caller.projectId), ...auditOf(caller) })),
    ),
    release: guarded(env, "Release", "write", async (r, caller, signal) =>
      holdingAnswer(await releaseSlot({ ...ctx, signal }, { ...slot.parseRelease(r, caller.projectId), ...auditOf(caller) })),
    ),
    listPools: guarded(env, "ListPools", "read", async (r, caller, signal) => ({
      pools: (await listPools({ ...ctx, signal }, slot.parseListPools(r, caller.projectId))).map(slot.pool),
    })),
    listSlotEvents: guarded(env, "ListSlotEvents", "read", async (r, caller, signal) =>
      slot.slotEventsResponse(await listSlotEvents({ ...ctx, signal }, slot.parseListSlotEvents(r, caller.projectId))),
    ),
  };
}
