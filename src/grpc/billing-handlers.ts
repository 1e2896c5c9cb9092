import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import { BillingServiceService as service, type BillingServiceServer } from "../../gen/velobase/billing/v1/billing.js";
import { DEFAULT_PROJECT_ID, type BillingContext } from "../billing/context.js";
import { deposit } from "../billing/deposit.js";
import { getCustomer } from "../billing/get-customer.js";
import { getTransaction } from "../billing/get-transaction.js";
import { listLedgerEntries } from "../billing/list-ledger.js";
import { consume, unfreeze } from "../billing/settle.js";
import { deduct, freeze } from "../billing/spend.js";
import * as format from "./format-responses.js";
import * as parse from "./parse-requests.js";
import { unary, type CallEnvironment } from "./unary.js";

/** Asserts what only the sweeper may see: a manual settlement never skips. */
function settled<T>(result: T | null): T {
  if (result === null) throw new Error("a manual settlement returned no result");
  return result;
}

/** BillingService: each handler parses the request, runs one operation, formats the answer. */
export function billingHandlers(ctx: BillingContext, env: CallEnvironment): BillingServiceServer & UntypedServiceImplementation {
  const project = DEFAULT_PROJECT_ID;
  return {
    deposit: unary(
      env,
      "Deposit",
      async (r) => format.depositResponse(await deposit(ctx, parse.parseDeposit(r, project))),
      service.deposit.responseSerialize,
    ),
    deduct: unary(
      env,
      "Deduct",
      async (r) => format.deductResponse(await deduct(ctx, parse.parseDeduct(r, project))),
      service.deduct.responseSerialize,
    ),
    freeze: unary(
      env,
      "Freeze",
      async (r) => format.freezeResponse(await freeze(ctx, parse.parseFreeze(r, project))),
      service.freeze.responseSerialize,
    ),
    consume: unary(
      env,
      "Consume",
      async (r) => format.consumeResponse(settled(await consume(ctx, parse.parseConsume(r, project)))),
      service.consume.responseSerialize,
    ),
    unfreeze: unary(
      env,
      "Unfreeze",
      async (r) => format.unfreezeResponse(settled(await unfreeze(ctx, parse.parseUnfreeze(r, project)))),
      service.unfreeze.responseSerialize,
    ),
    getCustomer: unary(
      env,
      "GetCustomer",
      async (r) => format.getCustomerResponse(await getCustomer(ctx, parse.parseGetCustomer(r, project))),
      service.getCustomer.responseSerialize,
    ),
    getTransaction: unary(
      env,
      "GetTransaction",
      async (r) => format.getTransactionResponse(await getTransaction(ctx, parse.parseGetTransaction(r, project))),
      service.getTransaction.responseSerialize,
    ),
    listLedgerEntries: unary(
      env,
      "ListLedgerEntries",
      async (r) => format.listLedgerEntriesResponse(await listLedgerEntries(ctx, parse.parseListLedgerEntries(r, project))),
      service.listLedgerEntries.responseSerialize,
    ),
  };
}
