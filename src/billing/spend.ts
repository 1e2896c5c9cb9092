import { applyDeltas } from "../domain/account-deltas.js";
import { balanceOf } from "../domain/account-status.js";
import { allocate } from "../domain/allocation.js";
import { fingerprint } from "../domain/fingerprint.js";
import type { SpendResult } from "../domain/results.js";
import type { AutoAction, Metadata, TransactionKind } from "../domain/types.js";
import { BillingError } from "../errors/billing-error.js";
import { applyAccountDeltas, lockAccounts } from "../store/accounts-store.js";
import { lockCustomer } from "../store/customers-store.js";
import { encodeJson } from "../store/json-codec.js";
import { appendLedger } from "../store/ledger-store.js";
import { runTransaction } from "../store/run-transaction.js";
import { findTransaction, insertAllocations, insertTransaction } from "../store/transactions-store.js";
import type { BillingContext } from "./context.js";
import { replayStored } from "./idempotency.js";

export interface SpendInput {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly transactionId: string;
  readonly amount: bigint;
  readonly creditTypes: readonly string[];
  readonly businessType: number;
  readonly description: string;
  readonly metadata: Metadata;
}

export interface AutoSettlement {
  readonly action: AutoAction;
  readonly afterSeconds: bigint;
}

export interface FreezeInput extends SpendInput {
  readonly autoSettlement: AutoSettlement | null;
}

export const deduct = (ctx: BillingContext, input: SpendInput): Promise<SpendResult> =>
  spend(ctx, "DEDUCT", { ...input, autoSettlement: null });

export const freeze = (ctx: BillingContext, input: FreezeInput): Promise<SpendResult> => spend(ctx, "FREEZE", input);

/** Deduct and Freeze: allocate over ACTIVE accounts, move to used (deduct) or frozen (freeze). */
async function spend(ctx: BillingContext, kind: TransactionKind, input: FreezeInput): Promise<SpendResult> {
  const { projectId } = input;
  const requestFingerprint = fingerprint({ op: kind, ...input, projectId: undefined });
  return runTransaction(
    ctx.database.db,
    async (tx) => {
      const stored = await findTransaction(tx, projectId, input.transactionId);
      if (stored) return replayStored<SpendResult>(stored, input.customerId, requestFingerprint);

      const customer = await lockCustomer(tx, projectId, input.customerId);
      if (!customer) throw new BillingError("customer_not_found", undefined, { customer_id: input.customerId });
      const nowMs = ctx.now();
      const accounts = await lockAccounts(tx, projectId, customer.pk, nowMs);
      const lines = allocate({ accounts, amount: input.amount, creditTypes: input.creditTypes, nowMs });
      const deltas = lines.map((l) =>
        kind === "DEDUCT" ? { accountId: l.accountId, used: l.amount, frozen: 0n } : { accountId: l.accountId, used: 0n, frozen: l.amount },
      );
      await applyAccountDeltas(tx, deltas);

      const auto = input.autoSettlement;
      const autoAtMs = auto ? nowMs + Number(auto.afterSeconds) * 1000 : null;
      const result: SpendResult = {
        transactionId: input.transactionId,
        amount: input.amount,
        details: lines,
        atMs: nowMs,
        unfreezeAtMs: auto?.action === "UNFREEZE" ? autoAtMs : null,
        consumeAtMs: auto?.action === "CONSUME" ? autoAtMs : null,
        balance: balanceOf(applyDeltas(accounts, deltas), nowMs),
        isIdempotentReplay: false,
      };
      const transactionPk = await insertTransaction(tx, projectId, {
        ...input,
        customerPk: customer.pk,
        kind,
        status: kind === "DEDUCT" ? "DEDUCTED" : "FROZEN",
        requestFingerprint,
        response: encodeJson(result),
        autoAction: auto?.action ?? null,
        autoAtMs,
        nowMs,
      });
      await insertAllocations(tx, projectId, transactionPk, lines);
      await appendLedger(
        tx,
        {
          ...input,
          customerPk: customer.pk,
          transactionPk,
          idempotencyKey: "",
          automatic: false,
          nowMs,
        },
        lines.map((l) => ({ operation: kind, ...l })),
      );
      return result;
    },
    ctx.retries,
  );
}
