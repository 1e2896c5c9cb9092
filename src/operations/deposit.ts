import { accountStatus, accountView } from "../domain/account-status.js";
import { checkCustomerTotal } from "../domain/customer-limit.js";
import { envelopeOf } from "../domain/idempotency.js";
import { NO_EXPIRY_MS, NO_START_MS } from "../domain/limits.js";
import type { DepositResult } from "../domain/results.js";
import type { Balance, Metadata } from "../domain/types.js";
import { checkValidityWindow } from "../domain/validation.js";
import { sql } from "drizzle-orm";
import {
  accountsFromRows,
  balanceFromRow,
  creditAccountSql,
  customerTotalsSql,
  lockCustomerAccountsSql,
  unexpiredTotalFromRow,
} from "../store/accounts-store.js";
import { customerByPkSql, upsertCustomerSql } from "../store/customers-store.js";
import { encodeJson } from "../store/json-codec.js";
import { appendLedgerSql } from "../store/ledger-store.js";
import { findOutcomeSql, outcomeFromRow, recordOutcomeSql } from "../store/outcomes-store.js";
import { bigOf } from "../store/row-values.js";
import { headerOf, rowsOf, runTransaction } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";
import { replayOf } from "./idempotency.js";

export interface DepositInput {
  readonly projectId: bigint;
  /** The caller's key, recorded on the ledger entry; not part of the request's fingerprint. */
  readonly apiKeyId: bigint | null;
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
 * Round trips: (BEGIN, key lookup, create-or-lock the customer, its totals), then (credit the
 * account, ledger entry, read the account back, COMMIT) — plus one more for the idempotency
 * record, which stores the response carrying the new entry's id. The key is looked at before
 * anything is credited, so a retry replays whatever the account holds by then; the customer's
 * unexpired credits are bounded before it too, so every balance stays encodable.
 */
export async function deposit(ctx: BillingContext, input: DepositInput): Promise<DepositResult> {
  const { projectId, idempotencyKey } = input;
  const envelope =
    idempotencyKey === null
      ? null
      : envelopeOf("DEPOSIT", idempotencyKey, {
          op: "deposit",
          ...input,
          projectId: undefined,
          apiKeyId: undefined,
          idempotencyKey: undefined,
        });
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
      const loaded = await tx.run([
        ...(envelope === null ? [] : [findOutcomeSql(projectId, envelope)]),
        upsertCustomerSql(projectId, { ...input, nowMs }),
        sql`SET @customer = LAST_INSERT_ID()`,
        customerTotalsSql(projectId, sql`@customer`, nowMs),
        sql`SELECT @customer AS customer_pk`,
      ]);
      // Replays roll back what the batch wrote: runTransaction never commits an unfinished transaction.
      const replay = envelope === null ? null : replayOf<DepositResult>(outcomeFromRow(rowsOf(loaded[0])[0]), { ...input, ...envelope });
      if (replay) return replay;
      // After the replay check: a retry must replay even once its expires_at has passed.
      checkValidityWindow(input, nowMs);
      const customerPk = bigOf(rowsOf(loaded.at(-1))[0]?.customer_pk);
      const totals = rowsOf(loaded.at(-2))[0];
      const before = balanceFromRow(totals);
      // Under the customer lock: no other write adds to this customer's accounts meanwhile.
      checkCustomerTotal(unexpiredTotalFromRow(totals), input.amount);

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
          apiKeyId: input.apiKeyId,
        },
        [{ operation: "DEPOSIT", accountId: sql`@account`, amount: input.amount, creditType: key.creditType, source: key.source }],
      );
      const written = await tx.run(
        [
          creditAccountSql(projectId, sql`${customerPk}`, key, input.amount, nowMs),
          sql`SET @account = LAST_INSERT_ID()`,
          ...ledger,
          lockCustomerAccountsSql(customerByPkSql(customerPk), sql`a.id = @account`),
        ],
        { commit: envelope === null },
      );
      const account = accountsFromRows(rowsOf(written.at(-1)))[0];
      if (!account) throw new Error("the credited account was not read back");
      const result: DepositResult = {
        customerId: input.customerId,
        account: accountView(account, nowMs),
        addedAmount: input.amount,
        ledgerEntryId: BigInt(headerOf(written[2]).insertId),
        balance: accountStatus(account, nowMs) === "ACTIVE" ? credited(before, input.amount) : before,
        isIdempotentReplay: false,
      };
      if (envelope !== null) {
        await tx.run([recordOutcomeSql(projectId, { envelope, customerPk, response: encodeJson(result), nowMs })], { commit: true });
      }
      return result;
    },
    ctx.retries,
  );
}

const credited = (b: Balance, amount: bigint): Balance => ({ ...b, total: b.total + amount, available: b.available + amount });
