import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { EventServiceServer } from "../../gen/velobase/billing/v1/events.js";
import type { BillingContext } from "../operations/context.js";
import { watchEvents } from "../operations/events/read-events.js";
import { eventMessage, parseWatchEvents } from "./event-messages.js";
import { guardedStream, type StreamEnvironment } from "./server-stream.js";

/** EventService: WatchEvents streams the caller's project's feed until cancelled. */
export function eventHandlers(ctx: BillingContext, env: StreamEnvironment): EventServiceServer & UntypedServiceImplementation {
  return {
    watchEvents: guardedStream(env, "WatchEvents", "read", async (r, call) => {
      const query = parseWatchEvents(r, call.caller.projectId);
      await watchEvents(ctx, query, call.caller.apiKeyId, call.signal, (event) => call.send({ event: eventMessage(event) }));
    }),
  };
}
