import { listUnrecordedExpiries } from "../store/accounts-store.js";
import type { BillingContext } from "./context.js";
import { runWrite } from "./run-write.js";

/** Accounts examined per sweep. */
export const EXPIRY_BATCH_SIZE = 50;

/**
 * Writes, once per expired account, an EXPIRE entry for what was left available in it
 * (domain/plans/expiry-plan.ts), each through the pipeline as a sweeper's write: a busy customer
 * is skipped until the next sweep. Returns how many accounts were recorded.
 */
export async function recordExpiries(ctx: BillingContext): Promise<number> {
  const due = await listUnrecordedExpiries(ctx.database.db, ctx.now(), EXPIRY_BATCH_SIZE);
  let recorded = 0;
  for (const account of due) {
    const done = await runWrite(ctx, {
      kind: "expire",
      account: { projectId: account.projectId, customerPk: account.customerPk, accountId: account.id },
    });
    if (done !== null) recorded++;
  }
  return recorded;
}
