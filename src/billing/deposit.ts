import { accountView } from "../domain/account-status.js";
import { fingerprint } from "../domain/fingerprint.js";
import { NO_EXPIRY_MS, NO_START_MS } from "../domain/limits.js";
import type { DepositResult } from "../domain/results.js";
import type { Metadata } from "../domain/types.js";
import { checkValidityWindow } from "../domain/validation.js";
import { sql } from "drizzle-orm";
import {
  accountsFromRows,
  activeBalanceSql,
  balanceFromRow,
  creditAccountSql,
  lockCustomerAccountsSql,
} from "../store/accounts-store.js";
import { customerByPkSql, upsertCustomerSql } from "../store/customers-store.js";
import { findDepositKeySql, insertDepositKeySql, storedOutcomeFromRow } from "../store/deposit-keys-store.js";
import { encodeJson } from "../store/json-codec.js";
import { appendLedgerSql } from "../store/ledger-store.js";
import { bigOf } from "../store/row-values.js";
import { headerOf, rowsOf, runTransaction } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";
import { replayStored } from "./idempotency.js";

export interface DepositInput {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly amount: bigint;
  readonly idempotencyKey: string | null;
  readonly creditType: string;
  readonly source: string;
  readonly startsAtMs: number | null;
  readonly expiresAtMs: number | null;
  readonly name: string;
  readonly email: string;
  readonly description: string;
  readonly metadata: Metadata;
}

/**
 * Round trips: (BEGIN, key lookup, create-or-lock the customer, credit the account, read it back,
 * sum the balance), then (ledger entry, COMMIT) — plus one more for the idempotency
 * record, which stores the response carrying the new entry's id.
 */
export async function deposit(ctx: BillingContext, input: DepositInput): Promise<DepositResult> {
  const { projectId, idempotencyKey } = input;
  const requestFingerprint = fingerprint({ op: "deposit", ...input, projectId: undefined, idempotencyKey: undefined });
  const key = {
    creditType: input.creditType,
    source: input.source,
    startsAtMs: input.startsAtMs ?? NO_START_MS,
    expiresAtMs: input.expiresAtMs ?? NO_EXPIRY_MS,
  };
  return runTransaction(
    ctx.database,
    async (tx) => {
      const nowMs = ctx.now();
      const results = await tx.run([
        ...(idempotencyKey === null ? [] : [findDepositKeySql(projectId, idempotencyKey)]),
        upsertCustomerSql(projectId, { ...input, nowMs }),
        sql`SET @customer = LAST_INSERT_ID()`,
        creditAccountSql(projectId, sql`@customer`, key, input.amount, nowMs),
        sql`SET @account = LAST_INSERT_ID()`,
        lockCustomerAccountsSql(customerByPkSql(sql`@customer`), sql`a.id = @account`),
        activeBalanceSql(projectId, sql`@customer`, nowMs),
        sql`SELECT @customer AS customer_pk, @account AS account_id`,
      ]);
      // Replays roll back what the batch wrote: runTransaction never commits an unfinished transaction.
      const stored = idempotencyKey === null ? null : storedOutcomeFromRow(rowsOf(results[0])[0]);
      if (stored) return replayStored<DepositResult>(stored, input.customerId, requestFingerprint);
      // After the replay check: a retry must replay even once its expires_at has passed.
      checkValidityWindow(input, nowMs);
      const ids = rowsOf(results.at(-1))[0];
      const customerPk = bigOf(ids?.customer_pk);
      const accountId = bigOf(ids?.account_id);
      const account = accountsFromRows(rowsOf(results.at(-3)))[0];
      if (account?.id !== accountId) throw new Error(`account ${accountId} not locked after the deposit`);

      const ledger = appendLedgerSql(
        {
          projectId,
          customerPk,
          transactionPk: null,
          transactionId: "",
          idempotencyKey: idempotencyKey ?? "",
          businessType: 0,
          description: input.description,
          metadata: input.metadata,
          automatic: false,
          nowMs,
        },
        [{ operation: "DEPOSIT", accountId, amount: input.amount, creditType: key.creditType, source: key.source }],
      );
      const [written] = await tx.run(ledger, { commit: idempotencyKey === null });
      const result: DepositResult = {
        customerId: input.customerId,
        account: accountView(account, nowMs),
        addedAmount: input.amount,
        ledgerEntryId: BigInt(headerOf(written).insertId),
        balance: balanceFromRow(rowsOf(results.at(-2))[0]),
        isIdempotentReplay: false,
      };
      if (idempotencyKey !== null) {
        const response = encodeJson(result);
        await tx.run([insertDepositKeySql(projectId, { key: idempotencyKey, customerPk, requestFingerprint, response, nowMs })], {
          commit: true,
        });
      }
      return result;
    },
    ctx.retries,
  );
}
