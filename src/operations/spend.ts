import { balanceAfter } from "../domain/account-deltas.js";
import { availableOf } from "../domain/account-status.js";
import { allocate } from "../domain/allocation.js";
import { envelopeOf, type IdempotencyEnvelope, type StoredOutcome } from "../domain/idempotency.js";
import type { SpendResult } from "../domain/results.js";
import type { AccountSnapshot, Balance, Metadata, TransactionKind } from "../domain/types.js";
import type { AutoSettlement } from "../domain/validation.js";
import { BillingError } from "../errors/billing-error.js";
import { sql } from "drizzle-orm";
import {
  accountsFromRows,
  activeBalanceSql,
  applyAccountDeltasSql,
  balanceFromRow,
  lockCustomerSql,
  lockSpendableAccountsSql,
} from "../store/accounts-store.js";
import { customerByIdSql, customerPkSql } from "../store/customers-store.js";
import { encodeJson } from "../store/json-codec.js";
import { appendLedgerSql } from "../store/ledger-store.js";
import { bigOf } from "../store/row-values.js";
import { compact, rowsOf, runTransaction, type Tx } from "../store/run-transaction.js";
import { findOutcomeSql, outcomeFromRow, recordOutcomeSql } from "../store/outcomes-store.js";
import { insertAllocationsSql, insertTransactionSql } from "../store/transactions-store.js";
import type { BillingContext } from "./context.js";
import { replayOf } from "./idempotency.js";

export interface SpendInput {
  readonly projectId: bigint;
  /** The caller's key, recorded on the transaction and its entries; not part of the fingerprint. */
  readonly apiKeyId: bigint | null;
  readonly customerId: string;
  readonly transactionId: string;
  readonly amount: bigint;
  readonly creditTypes: readonly string[];
  readonly businessType: number;
  readonly description: string;
  readonly metadata: Metadata;
}

export type { AutoSettlement };

export interface FreezeInput extends SpendInput {
  readonly autoSettlement: AutoSettlement | null;
}

/**
 * Spendable accounts locked up front, in spending order. Most spends are covered by the first
 * few, so a customer's cost does not grow with its number of accounts; when these fall short,
 * all of them are read (one more round trip).
 */
export const SPEND_ACCOUNTS_LOCKED_FIRST = 16;

const totalAvailable = (accounts: readonly AccountSnapshot[]) => accounts.reduce((sum, a) => sum + availableOf(a), 0n);

export const deduct = (ctx: BillingContext, input: SpendInput): Promise<SpendResult> =>
  spend(ctx, "DEDUCT", { ...input, autoSettlement: null });

export const freeze = (ctx: BillingContext, input: FreezeInput): Promise<SpendResult> => spend(ctx, "FREEZE", input);

interface SpendState {
  readonly customerPk: bigint;
  /** Spendable accounts of the selected types, in spending order (all of them when short). */
  readonly accounts: AccountSnapshot[];
  readonly before: Balance;
}

/**
 * First round trip: BEGIN, the idempotency lookup, the customer lock, its first spendable
 * accounts and its balance. Returns the stored outcome when the key was used before.
 */
async function loadSpend(
  tx: Tx,
  input: FreezeInput,
  envelope: IdempotencyEnvelope,
  nowMs: number,
): Promise<{ stored: StoredOutcome } | { state: SpendState }> {
  const { projectId } = input;
  const customerPkQuery = customerPkSql(projectId, input.customerId);
  const spendable = (limit: number | null) => lockSpendableAccountsSql(projectId, customerPkQuery, nowMs, input.creditTypes, limit);
  const [existing, locked, accountRows, balanceRows] = await tx.run([
    findOutcomeSql(projectId, envelope),
    lockCustomerSql(customerByIdSql(projectId, input.customerId)),
    spendable(SPEND_ACCOUNTS_LOCKED_FIRST),
    activeBalanceSql(projectId, customerPkQuery, nowMs),
  ]);
  const stored = outcomeFromRow(rowsOf(existing)[0]);
  if (stored) return { stored };
  const customerRow = rowsOf(locked)[0];
  if (!customerRow) throw new BillingError("customer_not_found", undefined, { customer_id: input.customerId });
  let accounts = accountsFromRows(rowsOf(accountRows));
  if (accounts.length === SPEND_ACCOUNTS_LOCKED_FIRST && totalAvailable(accounts) < input.amount) {
    const [all] = await tx.run([spendable(null)]);
    accounts = accountsFromRows(rowsOf(all));
  }
  return { state: { customerPk: bigOf(customerRow.c_pk), accounts, before: balanceFromRow(rowsOf(balanceRows)[0]) } };
}

/**
 * Deduct and Freeze: allocate over ACTIVE accounts, move to used (deduct) or frozen (freeze).
 * Two round trips: loadSpend, then (write, COMMIT).
 */
async function spend(ctx: BillingContext, kind: TransactionKind, input: FreezeInput): Promise<SpendResult> {
  const { projectId } = input;
  const envelope = envelopeOf("SPEND", input.transactionId, { op: kind, ...input, projectId: undefined, apiKeyId: undefined });
  return runTransaction(
    ctx.database,
    async (tx) => {
      const nowMs = ctx.now();
      const loaded = await loadSpend(tx, input, envelope, nowMs);
      if ("stored" in loaded) {
        const replay = replayOf<SpendResult>(loaded.stored, { customerId: input.customerId, ...envelope });
        if (replay) return replay;
        throw new Error("a stored outcome did not replay");
      }
      const { customerPk, accounts, before } = loaded.state;

      const lines = allocate({
        accounts,
        amount: input.amount,
        creditTypes: input.creditTypes,
        nowMs,
        availableAllTypes: before.available,
      });
      const deltas = lines.map((l) =>
        kind === "DEDUCT" ? { accountId: l.accountId, used: l.amount, frozen: 0n } : { accountId: l.accountId, used: 0n, frozen: l.amount },
      );
      const auto = input.autoSettlement;
      const autoAtMs = auto ? nowMs + Number(auto.afterSeconds) * 1000 : null;
      const result: SpendResult = {
        transactionId: input.transactionId,
        amount: input.amount,
        details: lines,
        atMs: nowMs,
        unfreezeAtMs: auto?.action === "UNFREEZE" ? autoAtMs : null,
        consumeAtMs: auto?.action === "CONSUME" ? autoAtMs : null,
        balance: balanceAfter(before, accounts, deltas, nowMs),
        isIdempotentReplay: false,
      };
      const transactionPk = sql`@tx`;
      await tx.run(
        compact([
          ...applyAccountDeltasSql(deltas),
          insertTransactionSql(projectId, {
            ...input,
            customerPk,
            kind,
            status: kind === "DEDUCT" ? "DEDUCTED" : "FROZEN",
            autoAction: auto?.action ?? null,
            autoAtMs,
            nowMs,
          }),
          sql`SET @tx = LAST_INSERT_ID()`,
          recordOutcomeSql(projectId, { envelope, customerPk, response: encodeJson(result), nowMs }),
          ...insertAllocationsSql(projectId, transactionPk, lines),
          ...appendLedgerSql(
            { ...input, customerPk, transactionPk, idempotencyKey: "", automatic: false, nowMs },
            lines.map((l) => ({ operation: kind, ...l })),
          ),
        ]),
        { commit: true },
      );
      return result;
    },
    ctx.retries,
  );
}
