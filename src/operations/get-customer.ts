import { accountView, balanceOf, compareSpendingOrder } from "../domain/account-status.js";
import type { AccountView, Balance, Metadata } from "../domain/types.js";
import { BillingError } from "../errors/billing-error.js";
import { listAccounts } from "../store/accounts-store.js";
import { findCustomer } from "../store/customers-store.js";
import { runQuery } from "../store/run-transaction.js";
import type { BillingContext } from "./context.js";

export interface CustomerView {
  readonly customerId: string;
  readonly name: string;
  readonly email: string;
  readonly metadata: Metadata;
  readonly createdAtMs: number;
  readonly balance: Balance;
  readonly creditTypes: ReadonlyArray<{ creditType: string; balance: Balance; accounts: AccountView[] }>;
}

async function readCustomer(
  ctx: BillingContext,
  input: { projectId: bigint; customerId: string; includeInactive: boolean },
): Promise<CustomerView> {
  const { db } = ctx.database;
  const customer = await findCustomer(db, input.projectId, input.customerId);
  if (!customer) throw new BillingError("customer_not_found", undefined, { customer_id: input.customerId });
  const nowMs = ctx.now();
  const accounts = await listAccounts(db, input.projectId, customer.pk, input.includeInactive ? {} : { activeAtMs: nowMs });
  const byType = new Map<string, typeof accounts>();
  for (const account of [...accounts].sort(compareSpendingOrder)) {
    byType.set(account.creditType, [...(byType.get(account.creditType) ?? []), account]);
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
