import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { SlotServiceServer } from "../../gen/velobase/billing/v1/slots.js";
import { DEFAULT_PROJECT_ID, type BillingContext } from "../billing/context.js";
import { grantCapacity, revokeCapacity } from "../billing/slots/capacity.js";
import { claimSlot, releaseSlot } from "../billing/slots/claim.js";
import { listPools, listSlotEvents } from "../billing/slots/list-slots.js";
import type { HoldingResult, PoolResult } from "../domain/slots.js";
import * as slot from "./slot-messages.js";
import { unary, type CallEnvironment } from "./unary.js";

const poolAnswer = (r: PoolResult) => ({ pool: slot.pool(r.pool), isIdempotentReplay: r.isIdempotentReplay });
const holdingAnswer = (r: HoldingResult) => ({
  pool: slot.pool(r.pool),
  holdingId: r.holdingId.toString(),
  isIdempotentReplay: r.isIdempotentReplay,
});

/** SlotService: each handler parses the request, runs one operation, formats the answer. */
export function slotHandlers(ctx: BillingContext, env: CallEnvironment): SlotServiceServer & UntypedServiceImplementation {
  // The one place the caller's project is decided (the authenticated key's, once keys exist).
  const project = DEFAULT_PROJECT_ID;
  return {
    grantCapacity: unary(env, "GrantCapacity", async (r) => poolAnswer(await grantCapacity(ctx, slot.parseCapacity(r, project)))),
    revokeCapacity: unary(env, "RevokeCapacity", async (r) => poolAnswer(await revokeCapacity(ctx, slot.parseCapacity(r, project)))),
    claim: unary(env, "Claim", async (r) => holdingAnswer(await claimSlot(ctx, slot.parseClaim(r, project)))),
    release: unary(env, "Release", async (r) => holdingAnswer(await releaseSlot(ctx, slot.parseRelease(r, project)))),
    listPools: unary(env, "ListPools", async (r) => ({
      pools: (await listPools(ctx, slot.parseListPools(r, project))).map(slot.pool),
    })),
    listSlotEvents: unary(env, "ListSlotEvents", async (r) =>
      slot.slotEventsResponse(await listSlotEvents(ctx, slot.parseListSlotEvents(r, project))),
    ),
  };
}
