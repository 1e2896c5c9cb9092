import type { Metadata, Operation } from "../domain/types.js";
import { encodeJson } from "./json-codec.js";
import type { Tx } from "./run-transaction.js";
import { ledgerEntries } from "./schema.js";

export interface NewLedgerEntry {
  readonly operation: Operation;
  readonly accountId: bigint;
  readonly amount: bigint;
  readonly creditType: string;
  readonly source: string;
  readonly overage?: boolean;
}

/** What every entry of one operation shares. */
export interface LedgerContext {
  readonly projectId: bigint;
  readonly customerPk: bigint;
  readonly transactionPk: bigint | null;
  readonly transactionId: string;
  readonly idempotencyKey: string;
  readonly businessType: number;
  readonly description: string;
  readonly metadata: Metadata;
  readonly automatic: boolean;
  readonly nowMs: number;
}

/** Appends the entries in one statement; returns the id of the first (ids are consecutive). */
export async function appendLedger(tx: Tx, context: LedgerContext, entries: readonly NewLedgerEntry[]): Promise<bigint> {
  if (entries.length === 0) throw new Error("appendLedger needs at least one entry");
  const shared = {
    projectId: context.projectId,
    customerPk: context.customerPk,
    transactionPk: context.transactionPk,
    transactionId: context.transactionId,
    idempotencyKey: context.idempotencyKey,
    businessType: context.businessType,
    description: context.description,
    metadata: encodeJson(context.metadata),
    automatic: context.automatic,
    createdAt: new Date(context.nowMs),
  };
  const [result] = await tx.insert(ledgerEntries).values(
    entries.map((e) => ({
      ...shared,
      operation: e.operation,
      accountId: e.accountId,
      amount: e.amount,
      creditType: e.creditType,
      source: e.source,
      overage: e.overage ?? false,
    })),
  );
  return BigInt(result.insertId);
}
