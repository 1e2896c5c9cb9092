import { selectTransactionEntries } from "../store/ledger-store.js";
import { runQuery } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";
import { type LedgerEntryView, ledgerEntryViewOf } from "./list-ledger.js";

/**
 * A transaction's ledger entries, oldest first: the Deduct or Freeze, then whatever settled it
 * (CONSUME, UNFREEZE, and EXPIRE of credits returned to accounts that had expired). Empty for a
 * transaction id the project does not have.
 */
export function listTransactionEntries(
  ctx: BillingContext,
  input: { projectId: bigint; transactionId: string },
): Promise<LedgerEntryView[]> {
  return runQuery(async () =>
    (await selectTransactionEntries(ctx.database.db, input.projectId, input.transactionId)).map(ledgerEntryViewOf),
  );
}
