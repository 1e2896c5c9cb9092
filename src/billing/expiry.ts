import { availableOf } from "../domain/account-status.js";
import { listUnrecordedExpiries, lockUnrecordedExpiry, markExpiryRecorded } from "../store/accounts-store.js";
import { lockCustomerByPk } from "../store/customers-store.js";
import { appendLedger } from "../store/ledger-store.js";
import { runTransaction } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";

/** Accounts examined per sweep. */
export const EXPIRY_BATCH_SIZE = 50;

/**
 * Writes, once per expired account, an EXPIRE entry for what was left available in it. The
 * account's figures do not change (the ledger equations hold); the entry tells the customer's
 * history where those credits went. Returns how many accounts were recorded.
 */
export async function recordExpiries(ctx: BillingContext): Promise<number> {
  const nowMs = ctx.now();
  const due = await listUnrecordedExpiries(ctx.database.db, nowMs, EXPIRY_BATCH_SIZE);
  let recorded = 0;
  for (const candidate of due) {
    const done = await runTransaction(ctx.database.db, async (tx) => {
      if (!(await lockCustomerByPk(tx, candidate.customerPk, { skipLocked: true }))) return false;
      const account = await lockUnrecordedExpiry(tx, candidate.id);
      if (!account) return false;
      const left = availableOf(account);
      if (left > 0n) {
        await appendLedger(
          tx,
          {
            projectId: candidate.projectId,
            customerPk: candidate.customerPk,
            transactionPk: null,
            transactionId: "",
            idempotencyKey: "",
            businessType: 0,
            description: "",
            metadata: {},
            automatic: true,
            nowMs,
          },
          [{ operation: "EXPIRE", accountId: account.id, amount: left, creditType: account.creditType, source: account.source }],
        );
      }
      await markExpiryRecorded(tx, account.id);
      return true;
    });
    if (done) recorded++;
  }
  return recorded;
}
