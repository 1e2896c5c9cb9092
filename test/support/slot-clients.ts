import { credentials } from "@grpc/grpc-js";
import { EntitlementClient, SlotClient } from "../../src/client/slot-clients.js";

/** The SlotService and EntitlementService clients of a test server, on its loopback port, presenting `apiKey`. */
export function slotClientsFor(port: number, apiKey: string | null): { slots: SlotClient; entitlements: EntitlementClient; close(): void } {
  const slots = new SlotClient(`127.0.0.1:${port}`, credentials.createInsecure(), apiKey);
  const entitlements = new EntitlementClient(`127.0.0.1:${port}`, credentials.createInsecure(), apiKey);
  return {
    slots,
    entitlements,
    close() {
      slots.close();
      entitlements.close();
    },
  };
}
