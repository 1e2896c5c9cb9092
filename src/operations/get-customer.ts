import { accountStatus, accountView, balanceOf, compareSpendingOrder } from "../domain/account-status.js";
import type { AccountView, Balance, Metadata } from "../domain/types.js";
import { BillingError } from "../errors/billing-error.js";
import { listAccounts } from "../store/accounts-store.js";
import { findCustomer } from "../store/customers-store.js";
import { accountsAsOf } from "../store/ledger-store.js";
import { runQuery } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";
import { appendTo } from "../domain/collections.js";

export interface CustomerView {
  readonly customerId: string;
  readonly name: string;
  readonly email: string;
  readonly metadata: Metadata;
  readonly createdAtMs: number;
  readonly balance: Balance;
  readonly creditTypes: ReadonlyArray<{ creditType: string; balance: Balance; accounts: AccountView[] }>;
}

export interface CustomerQuery {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly includeInactive: boolean;
  /** The balances as they were then, from the ledger's entries; null: now. */
  readonly asOfMs: number | null;
}

async function readCustomer(ctx: BillingContext, input: CustomerQuery): Promise<CustomerView> {
  const { db } = ctx.database;
  const customer = await findCustomer(db, input.projectId, input.customerId);
  const { asOfMs } = input;
  // A customer created after the time asked for did not exist then.
  if (!customer || (asOfMs !== null && customer.createdAtMs > asOfMs)) {
    throw new BillingError("customer_not_found", undefined, { customer_id: input.customerId });
  }
  const nowMs = asOfMs ?? ctx.now();
  const all =
    asOfMs === null
      ? await listAccounts(db, input.projectId, customer.pk, input.includeInactive ? {} : { activeAtMs: nowMs })
      : await accountsAsOf(db, input.projectId, customer.pk, asOfMs);
  const accounts = input.includeInactive || asOfMs === null ? all : all.filter((a) => accountStatus(a, nowMs) === "ACTIVE");
  const byType = new Map<string, typeof accounts>();
  for (const account of [...accounts].sort(compareSpendingOrder)) {
    appendTo(byType, account.creditType, account);
  }
  return {
    customerId: customer.customerId,
    name: customer.name,
    email: customer.email,
    metadata: customer.metadata,
    createdAtMs: customer.createdAtMs,
    balance: balanceOf(accounts, nowMs),
    creditTypes: [...byType.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([creditType, list]) => ({
        creditType,
        balance: balanceOf(list, nowMs),
        accounts: list.map((a) => accountView(a, nowMs)),
      })),
  };
}

/** getCustomer with storage failures translated (database down → service_unavailable). */
export const getCustomer: typeof readCustomer = (ctx, input) => runQuery(() => readCustomer(ctx, input));
