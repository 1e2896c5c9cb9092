import { accountView, balanceOf } from "../domain/account-status.js";
import { fingerprint } from "../domain/fingerprint.js";
import { NO_EXPIRY_MS, NO_START_MS } from "../domain/limits.js";
import type { DepositResult } from "../domain/results.js";
import type { Metadata } from "../domain/types.js";
import { checkValidityWindow } from "../domain/validation.js";
import { creditAccount, lockAccounts } from "../store/accounts-store.js";
import { upsertAndLockCustomer } from "../store/customers-store.js";
import { findDepositKey, insertDepositKey } from "../store/deposit-keys-store.js";
import { encodeJson } from "../store/json-codec.js";
import { appendLedger } from "../store/ledger-store.js";
import { runTransaction } from "../store/run-transaction.js";
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

export async function deposit(ctx: BillingContext, input: DepositInput): Promise<DepositResult> {
  const { projectId, idempotencyKey } = input;
  const requestFingerprint = fingerprint({ op: "deposit", ...input, projectId: undefined, idempotencyKey: undefined });
  return runTransaction(
    ctx.database.db,
    async (tx) => {
      if (idempotencyKey !== null) {
        const stored = await findDepositKey(tx, projectId, idempotencyKey);
        if (stored) return replayStored<DepositResult>(stored, input.customerId, requestFingerprint);
      }
      const nowMs = ctx.now();
      checkValidityWindow(input, nowMs);
      const customerPk = await upsertAndLockCustomer(tx, projectId, { ...input, nowMs });
      const key = {
        creditType: input.creditType,
        source: input.source,
        startsAtMs: input.startsAtMs ?? NO_START_MS,
        expiresAtMs: input.expiresAtMs ?? NO_EXPIRY_MS,
      };
      const accountId = await creditAccount(tx, projectId, customerPk, key, input.amount, nowMs);
      const accounts = await lockAccounts(tx, projectId, customerPk, nowMs, [accountId]);
      const account = accounts.find((a) => a.id === accountId);
      if (!account) throw new Error(`account ${accountId} vanished after the deposit`);
      const ledgerEntryId = await appendLedger(
        tx,
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
      const result: DepositResult = {
        customerId: input.customerId,
        account: accountView(account, nowMs),
        addedAmount: input.amount,
        ledgerEntryId,
        balance: balanceOf(accounts, nowMs),
        isIdempotentReplay: false,
      };
      if (idempotencyKey !== null) {
        const response = encodeJson(result);
        await insertDepositKey(tx, projectId, { key: idempotencyKey, customerPk, requestFingerprint, response, nowMs });
      }
      return result;
    },
    ctx.retries,
  );
}
