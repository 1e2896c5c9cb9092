import { availableOf } from "../domain/account-status.js";
import { accountsFromRows, listUnrecordedExpiries, lockUnrecordedExpirySql, markExpiryRecordedSql } from "../store/accounts-store.js";
import { appendExpirySql } from "../store/ledger-store.js";
import { rowsOf, runTransaction } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";

/** Accounts examined per sweep. */
export const EXPIRY_BATCH_SIZE = 50;

/**
 * Writes, once per expired account, an EXPIRE entry for what was left available in it. The
 * account's figures do not change (the ledger equations hold); the entry tells the customer's
 * history where those credits went. A busy customer is skipped until the next sweep. Returns how
 * many accounts were recorded.
 */
export async function recordExpiries(ctx: BillingContext): Promise<number> {
  const nowMs = ctx.now();
  const due = await listUnrecordedExpiries(ctx.database.db, nowMs, EXPIRY_BATCH_SIZE);
  let recorded = 0;
  for (const candidate of due) {
    const done = await runTransaction(ctx.database, async (tx) => {
      const [locked] = await tx.run([lockUnrecordedExpirySql(candidate.customerPk, candidate.id)]);
      const account = accountsFromRows(rowsOf(locked))[0];
      if (!account) return false;
      const left = availableOf(account);
      const entry =
        left > 0n
          ? appendExpirySql({ projectId: candidate.projectId, customerPk: candidate.customerPk, transactionId: "", nowMs }, [
              { accountId: account.id, amount: left, creditType: account.creditType, source: account.source },
            ])
          : [];
      await tx.run([...entry, ...markExpiryRecordedSql(account.id)], { commit: true });
      return true;
    });
    if (done) recorded++;
  }
  return recorded;
}
