import { OPERATIONS, type Operation } from "../domain/types.js";
import { selectTransactionEntries } from "../store/ledger-store.js";
import { oneOf } from "../store/row-values.js";
import { runQuery } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";

/** One ledger entry of a transaction: what moved, on which account, and who (which key) moved it. */
export interface TransactionEntry {
  readonly id: bigint;
  readonly operation: Operation;
  readonly amount: bigint;
  readonly accountId: bigint;
  readonly creditType: string;
  readonly source: string;
  readonly automatic: boolean;
  readonly overage: boolean;
  readonly createdAtMs: number;
  /** Display prefix of the key that made the entry; null for the sweeper's and expiry's. */
  readonly apiKeyPrefix: string | null;
}

/**
 * A transaction's ledger entries, oldest first: the Deduct or Freeze, then whatever settled it
 * (CONSUME, UNFREEZE, and EXPIRE of credits returned to accounts that had expired). Empty for a
 * transaction id the project does not have.
 */
export function listTransactionEntries(
  ctx: BillingContext,
  input: { projectId: bigint; transactionId: string },
): Promise<TransactionEntry[]> {
  return runQuery(async () => {
    const rows = await selectTransactionEntries(ctx.database.db, input.projectId, input.transactionId);
    return rows.map(({ l, apiKeyPrefix }) => ({
      id: l.id,
      operation: oneOf(l.operation, OPERATIONS, "operation"),
      amount: l.amount,
      accountId: l.accountId,
      creditType: l.creditType,
      source: l.source,
      automatic: l.automatic,
      overage: l.overage,
      createdAtMs: l.createdAt.getTime(),
      apiKeyPrefix,
    }));
  });
}
