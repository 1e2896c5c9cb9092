import { refusable } from "./outcome.js";
import { NO_BALANCE } from "../account-status.js";
import type { AccountSnapshot } from "../types.js";
import type { Planned } from "./planned.js";
import { planRefund } from "./refund-plan.js";
import { chargeKey, depositKey } from "./reversal-state.js";
import { planVoid } from "./void-plan.js";
import type { WorkingCustomer } from "./working-customer.js";
import { PrefetchRaced } from "./prefetch-raced.js";
import { type CreditWrite, customerPkOf, type ListState, outcomeMapKey, outcomeRefOf, type WritePlan } from "./write-list.js";

// Refund and VoidDeposit in the list planner (list-plan.ts): each planned on the state the
// earlier writes of the list left, and moving that state for the writes after it.

/** The part of the list planner's working customer that a reversal reads and moves. */
export type ReversalCustomer = Pick<WorkingCustomer, "state" | "before" | "accounts" | "touched" | "newAccounts" | "expired" | "exists">;

export type ReversalStep = { readonly kind: "plan"; readonly plan: WritePlan } | { readonly kind: "cut" };

type CustomerOf = (pk: bigint) => ReversalCustomer | undefined;

/**
 * Keys that make a later write of the list wait for a new segment (prefetched after this one is
 * applied): a second void of the same deposit. (A refund uses its charge's hold key, holdRefOf.)
 */
export function reversalKeysOf(write: CreditWrite): string[] {
  return write.kind === "void" ? [`deposit:${depositKey(write.request)}`] : [];
}

const storedOf = (state: ListState, write: CreditWrite) => {
  const ref = outcomeRefOf(write);
  return ref === null ? null : (state.outcomes.get(outcomeMapKey(ref)) ?? null);
};

/** A refusal from the catalogue is the write's plan; anything else is a bug and fails the list. */
function stepOf<C, R>(plan: () => Planned<C, R>, applied: (p: { changes: C; result: R }) => WritePlan): ReversalStep {
  const planned = refusable(plan);
  switch (planned.kind) {
    case "refused":
      return { kind: "plan", plan: planned };
    case "apply":
      return { kind: "plan", plan: applied(planned) };
    case "replay":
      return { kind: "plan", plan: { kind: "replay", stored: planned.stored } };
    case "more":
    case "skip":
      throw new Error("a reversal never needs more state and is never skipped");
  }
}

export function planRefundStep(
  state: ListState,
  write: Extract<CreditWrite, { kind: "refund" }>,
  customer: CustomerOf,
  nowMs: number,
): ReversalStep {
  const { request } = write;
  const loaded = state.reversals?.charges.get(chargeKey(request));
  const charge = loaded?.charge ?? null;
  const c = charge === null ? undefined : customer(charge.customerPk);
  if (charge !== null && c === undefined) throw new PrefetchRaced("charge");
  if (c && c.newAccounts.size > 0) return { kind: "cut" };
  const parts = loaded?.parts ?? [];
  const accounts = new Map<bigint, AccountSnapshot>();
  for (const p of parts) {
    const a = c?.accounts.get(p.accountId);
    if (a) accounts.set(a.id, a);
  }
  const refundState = {
    stored: storedOf(state, write),
    charge,
    parts,
    accounts,
    expiryRecorded: new Set([...(c?.state.expiryRecorded ?? []), ...(c?.expired ?? [])]),
    before: c?.before ?? NO_BALANCE,
  };
  return stepOf(
    () => planRefund(refundState, write, nowMs),
    (p) => {
      if (c) {
        for (const d of p.changes.deltas) {
          const a = c.accounts.get(d.accountId);
          if (!a) throw new Error(`account ${d.accountId} refunded but not loaded`);
          c.accounts.set(a.id, { ...a, used: a.used + d.used });
        }
        c.before = p.result.balance;
        c.touched = true;
      }
      return { kind: "refund", changes: p.changes, result: p.result };
    },
  );
}

export function planVoidStep(
  state: ListState,
  write: Extract<CreditWrite, { kind: "void" }>,
  customer: CustomerOf,
  nowMs: number,
): ReversalStep {
  const { request } = write;
  const found = customerPkOf(state, request);
  const c = found === undefined ? undefined : customer(found);
  if (c && c.newAccounts.size > 0) return { kind: "cut" };
  // A customer only the list's own later deposit creates does not exist yet for this write.
  const pk = c?.exists ? found : undefined;
  const loaded = state.reversals?.deposits.get(depositKey(request));
  const record = pk === undefined ? null : (loaded?.record ?? null);
  const voidState = {
    stored: storedOf(state, write),
    customerPk: pk ?? null,
    record,
    voided: loaded?.voided ?? 0n,
    account: record === null ? null : (c?.accounts.get(record.accountId) ?? null),
    before: c?.before ?? NO_BALANCE,
  };
  return stepOf(
    () => planVoid(voidState, write, nowMs),
    (p) => {
      if (c) {
        const a = c.accounts.get(p.changes.record.accountId);
        if (!a) throw new Error("a voided account was not loaded");
        c.accounts.set(a.id, { ...a, total: a.total - p.changes.amount });
        c.before = p.result.balance;
        c.touched = true;
      }
      return { kind: "void", changes: p.changes, result: p.result };
    },
  );
}
