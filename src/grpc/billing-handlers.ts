import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { BillingServiceServer } from "../../gen/velobase/billing/v1/billing.js";
import { BillingError } from "../errors/billing-error.js";
import { type BatchOutcome, batch } from "../operations/batch.js";
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
import { type GuardedEnvironment, guardedIn } from "./unary.js";

/**
 * BillingService: each handler admits the caller (key, scope, rate limit), parses the request in
 * the caller's project, runs one operation, formats the answer. Read keys may call the three reads.
 */
export function billingHandlers(ctx: BillingContext, env: GuardedEnvironment): BillingServiceServer & UntypedServiceImplementation {
  const call = guardedIn(ctx, env);
  return {
    deposit: call("Deposit", "write", async (r, caller, context) =>
      format.depositResponse(await deposit(context, parse.parseDeposit(r, caller))),
    ),
    deduct: call("Deduct", "write", async (r, caller, context) =>
      format.deductResponse(await deduct(context, parse.parseDeduct(r, caller))),
    ),
    freeze: call("Freeze", "write", async (r, caller, context) =>
      format.freezeResponse(await freeze(context, parse.parseFreeze(r, caller))),
    ),
    consume: call("Consume", "write", async (r, caller, context) =>
      format.consumeResponse(await consume(context, parse.parseConsume(r, caller))),
    ),
    unfreeze: call("Unfreeze", "write", async (r, caller, context) =>
      format.unfreezeResponse(await unfreeze(context, parse.parseUnfreeze(r, caller))),
    ),
    refund: call("Refund", "write", async (r, caller, context) =>
      format.refundResponse(await refund(context, parse.parseRefund(r, caller))),
    ),
    voidDeposit: call("VoidDeposit", "write", async (r, caller, context) =>
      format.voidDepositResponse(await voidDeposit(context, parse.parseVoidDeposit(r, caller))),
    ),
    getCustomer: call("GetCustomer", "read", async (r, caller, context) =>
      format.getCustomerResponse(await getCustomer(context, parse.parseGetCustomer(r, caller))),
    ),
    getTransaction: call("GetTransaction", "read", async (r, caller, context) =>
      format.getTransactionResponse(await getTransaction(context, parse.parseGetTransaction(r, caller))),
    ),
    listLedgerEntries: call("ListLedgerEntries", "read", async (r, caller, context) =>
      format.listLedgerEntriesResponse(await listLedgerEntries(context, parse.parseListLedgerEntries(r, caller))),
    ),
    batch: call(
      "Batch",
      "write",
      async (r, caller, context) => {
        const outcome = await batch(context, parse.parseBatch(r, caller), r.atomic);
        logUnexpectedWriteErrors(env, outcome);
        return format.batchResponse(outcome);
      },
      // One token per write, so a Batch is not a way around the rate limit; a longer one is refused
      // with invalid_argument before anything runs (and must be told so, not that it exceeds the
      // burst), so it is charged as one call.
      (r) => (r.operations.length > BATCH_OPERATIONS_MAX ? 1 : r.operations.length),
    ),
  };
}

/** A write of a non-atomic Batch that failed unexpectedly is answered server_error in its place: its cause is logged here. */
function logUnexpectedWriteErrors(env: GuardedEnvironment, outcome: BatchOutcome): void {
  if (!outcome.ok) return;
  outcome.results.forEach((result, index) => {
    if (result instanceof BillingError && result.spec.grpcStatus === "INTERNAL") {
      env.log.error({ method: "Batch", index, err: result.cause ?? result }, "a write of a batch failed with an unexpected error");
    }
  });
}
