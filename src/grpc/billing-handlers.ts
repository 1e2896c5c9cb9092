import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { BillingServiceServer } from "../../gen/velobase/billing/v1/billing.js";
import { batch } from "../operations/batch.js";
import type { BillingContext } from "../operations/context.js";
import { deposit } from "../operations/deposit.js";
import { getCustomer } from "../operations/get-customer.js";
import { getTransaction } from "../operations/get-transaction.js";
import { listLedgerEntries } from "../operations/list-ledger.js";
import { refund, voidDeposit } from "../operations/reversal.js";
import { consume, unfreeze } from "../operations/settle.js";
import { deduct, freeze } from "../operations/spend.js";
import { BATCH_OPERATIONS_MAX } from "../domain/limits.js";
import * as format from "./format-responses.js";
import * as parse from "./parse-requests.js";
import { guarded, type GuardedEnvironment } from "./unary.js";

/**
 * BillingService: each handler admits the caller (key, scope, rate limit), parses the request in
 * the caller's project, runs one operation, formats the answer. Read keys may call the three reads.
 */
export function billingHandlers(ctx: BillingContext, env: GuardedEnvironment): BillingServiceServer & UntypedServiceImplementation {
  return {
    deposit: guarded(env, "Deposit", "write", async (r, caller, signal) =>
      format.depositResponse(await deposit({ ...ctx, signal }, parse.parseDeposit(r, caller))),
    ),
    deduct: guarded(env, "Deduct", "write", async (r, caller, signal) =>
      format.deductResponse(await deduct({ ...ctx, signal }, parse.parseDeduct(r, caller))),
    ),
    freeze: guarded(env, "Freeze", "write", async (r, caller, signal) =>
      format.freezeResponse(await freeze({ ...ctx, signal }, parse.parseFreeze(r, caller))),
    ),
    consume: guarded(env, "Consume", "write", async (r, caller, signal) =>
      format.consumeResponse(await consume({ ...ctx, signal }, parse.parseConsume(r, caller))),
    ),
    unfreeze: guarded(env, "Unfreeze", "write", async (r, caller, signal) =>
      format.unfreezeResponse(await unfreeze({ ...ctx, signal }, parse.parseUnfreeze(r, caller))),
    ),
    refund: guarded(env, "Refund", "write", async (r, caller, signal) =>
      format.refundResponse(await refund({ ...ctx, signal }, parse.parseRefund(r, caller))),
    ),
    voidDeposit: guarded(env, "VoidDeposit", "write", async (r, caller, signal) =>
      format.voidDepositResponse(await voidDeposit({ ...ctx, signal }, parse.parseVoidDeposit(r, caller))),
    ),
    getCustomer: guarded(env, "GetCustomer", "read", async (r, caller, signal) =>
      format.getCustomerResponse(await getCustomer({ ...ctx, signal }, parse.parseGetCustomer(r, caller))),
    ),
    getTransaction: guarded(env, "GetTransaction", "read", async (r, caller, signal) =>
      format.getTransactionResponse(await getTransaction({ ...ctx, signal }, parse.parseGetTransaction(r, caller))),
    ),
    listLedgerEntries: guarded(env, "ListLedgerEntries", "read", async (r, caller, signal) =>
      format.listLedgerEntriesResponse(await listLedgerEntries({ ...ctx, signal }, parse.parseListLedgerEntries(r, caller))),
    ),
    batch: guarded(
      env,
      "Batch",
      "write",
      async (r, caller, signal) => format.batchResponse(await batch({ ...ctx, signal }, parse.parseBatch(r, caller), r.atomic)),
      // One token per write, so a Batch is not a way around the rate limit (a longer one is refused
      // with invalid_argument before anything runs, so it is charged the limit).
      (r) => Math.min(r.operations.length, BATCH_OPERATIONS_MAX),
    ),
  };
}
