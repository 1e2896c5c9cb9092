import { EntitlementClient, SlotClient } from "../../src/client/slot-clients.js";

/** The SlotService and EntitlementService clients of a test server, on its loopback port. */
export function slotClientsFor(port: number): { slots: SlotClient; entitlements: EntitlementClient; close(): void } {
  const slots = new SlotClient(`127.0.0.1:${port}`);
  const entitlements = new EntitlementClient(`127.0.0.1:${port}`);
  return {
    slots,
    entitlements,
    close() {
      slots.close();
      entitlements.close();
    },
  };
}
