import type { Logger } from "pino";
import { customersMissingAlertFlag, flagCustomersWithAlerts } from "../store/alerts-store.js";
import { runQuery } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";

/** How many customers one repair flags at most (the next repair takes the rest). */
const ALERT_FLAG_REPAIR_BATCH = 1_000;

/**
 * Turns has_alerts on for customers whose balance alerts an instance of a build before migration
 * 0015 set without it (a rolling upgrade): their writes would never read those alerts, so they
 * would never fire. Run by the sweeper at its first sweep and every ALERT_FLAG_REPAIR_INTERVAL_MS
 * after; one warning when it flagged any. Returns how many it flagged.
 */
export async function repairAlertFlags(ctx: BillingContext, log: Logger): Promise<number> {
  const pks = await runQuery(() => customersMissingAlertFlag(ctx.database.pool, ALERT_FLAG_REPAIR_BATCH));
  if (pks.length === 0) return 0;
  await runQuery(() => flagCustomersWithAlerts(ctx.database.pool, pks));
  log.warn({ customers: pks.length }, "balance alerts found on customers not flagged as having them (set by an older build); flagged them");
  return pks.length;
}

/** How often the sweeper looks for such customers. */
export const ALERT_FLAG_REPAIR_INTERVAL_MS = 60_000;
