/** Drives one scenario against a running server: PORT, API_KEY, SCENARIO, SECONDS, CONCURRENCY. For profiling. */
import { credentials } from "@grpc/grpc-js";
import { BillingClient } from "../src/client/billing-client.js";
import { runLoad } from "./load.js";

const client = new BillingClient(`127.0.0.1:${process.env.PORT ?? "50051"}`, credentials.createInsecure(), process.env.API_KEY ?? null);
const scenario = process.env.SCENARIO ?? "deduct";
const runId = `drive-${Date.now().toString(36)}`;
await client.call("deposit", { customerId: "drive", amount: 10n ** 12n });
const result = await runLoad({
  concurrency: Number(process.env.CONCURRENCY ?? 16),
  durationMs: Number(process.env.SECONDS ?? 10) * 1000,
  maxOps: 1_000_000,
  operation: async (seq) => {
    const customerId = process.env.HOT ? "drive" : `drive-${seq % 100}`;
    if (!process.env.HOT && seq < 100) await client.call("deposit", { customerId, amount: 10n ** 12n });
    const transactionId = `${runId}-${seq}`;
    if (scenario === "deduct") await client.call("deduct", { customerId, transactionId, amount: 1n });
    else {
      await client.call("freeze", { customerId, transactionId, amount: 2n });
      await client.call("consume", { transactionId, actualAmount: 1n });
    }
  },
});
process.stdout.write(`${JSON.stringify(result)}\n`);
client.close();
