import type { Logger } from "pino";
import { findTransaction, listDueHolds, postponeAutoSettlement } from "../store/transactions-store.js";
import type { BillingContext } from "./context.js";
import { recordExpiries } from "./expiry.js";
import { consume, unfreeze } from "./settle.js";

/** Holds settled per sweep; small batches keep each pass short and fair between instances. */
export const SWEEP_BATCH_SIZE = 50;
/** A hold whose settlement failed is tried again after this long, behind the others. */
export const SWEEP_RETRY_DELAY_MS = 60_000;

const AUTOMATIC = { automatic: true } as const;

/**
 * Settles holds whose auto-settlement deadline passed. Safe with many instances: each hold is
 * settled in its own transaction that re-checks the hold's state under the customer lock, and a
 * customer locked by someone else is skipped (SKIP LOCKED) and retried on the next pass.
 */
export async function sweepDueHolds(ctx: BillingContext, log: Logger): Promise<number> {
  const due = await listDueHolds(ctx.database.db, ctx.now(), SWEEP_BATCH_SIZE);
  let settled = 0;
  for (const hold of due) {
    try {
      const row = await findTransaction(ctx.database.db, hold.projectId, hold.transactionId);
      if (row?.status !== "FROZEN") continue;
      const target = { projectId: hold.projectId, transactionId: hold.transactionId, customerId: null };
      const result =
        row.autoAction === "CONSUME"
          ? await consume(ctx, { ...target, actualAmount: null, allowOverage: false }, AUTOMATIC)
          : await unfreeze(ctx, target, AUTOMATIC);
      if (result && !result.isIdempotentReplay) settled++;
    } catch (error) {
      log.error({ err: error, transactionId: hold.transactionId }, "auto-settlement failed; postponed");
      await postponeAutoSettlement(ctx.database.db, hold.projectId, hold.transactionId, ctx.now() + SWEEP_RETRY_DELAY_MS).catch(
        () => undefined,
      );
    }
  }
  return settled;
}

/** Runs sweeps on an interval until stopped; a tick is skipped while the previous sweep runs. */
export function startSweeper(ctx: BillingContext, log: Logger, intervalMs: number): { stop(): Promise<void> } {
  let running: Promise<void> | null = null;
  const timer = setInterval(() => {
    if (running) return;
    running = sweepDueHolds(ctx, log)
      .then(() => recordExpiries(ctx))
      .then(() => undefined)
      .catch((error: unknown) => log.warn({ err: error }, "sweep failed"))
      .finally(() => {
        running = null;
      });
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
