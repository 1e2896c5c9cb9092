import { BillingError } from "../../errors/billing-error.js";
import type { AccountDelta } from "../account-deltas.js";
import { availableOf } from "../account-status.js";
import type { FrozenPart, Hold } from "../hold.js";
import type { OutcomeScope, StoredOutcome } from "../idempotency.js";
import type { ConsumeRequest, FreezeRequest, SettleRequest } from "../requests.js";
import type { AccountSnapshot, Balance, TransactionKind } from "../types.js";
import type { Planned } from "./planned.js";
import { planConsume, planUnfreeze, type SettleChanges } from "./settle-plan.js";
import { planSpend, type SpendChanges } from "./spend-plan.js";

/** A write group commit may plan in memory with others of its customer. */
export type GroupWrite =
  | { readonly kind: "spend"; readonly spendKind: TransactionKind; readonly request: FreezeRequest }
  | { readonly kind: "consume"; readonly request: ConsumeRequest }
  | { readonly kind: "unfreeze"; readonly request: SettleRequest };

/** A hold as loaded for a group, with its allocation and accounts. */
export interface GroupHold {
  /** null: no such transaction of this customer. */
  readonly hold: Hold | null;
  /** The transaction exists, but belongs to another customer (not locked). */
  readonly elsewhere: boolean;
  readonly parts: readonly FrozenPart[];
  readonly accounts: readonly AccountSnapshot[];
  readonly expiryRecorded: ReadonlySet<bigint>;
}

/** Everything a group of one customer's writes reads, in one round trip, under the customer's lock. */
export interface GroupState {
  /** null: no such customer. */
  readonly customerPk: bigint | null;
  readonly before: Balance;
  /** Spendable accounts of the group's credit types, in spending order. */
  readonly spendable: readonly AccountSnapshot[];
  /** False when only the first ones were read. */
  readonly complete: boolean;
  /** Stored outcomes by `scope:key`. */
  readonly outcomes: ReadonlyMap<string, StoredOutcome>;
  /** By transaction id. */
  readonly holds: ReadonlyMap<string, GroupHold>;
}

export type GroupPlanned =
  | { readonly kind: "spend"; readonly planned: Planned<SpendChanges, unknown> & { kind: "apply" | "replay" } }
  | { readonly kind: "settle"; readonly planned: Planned<SettleChanges, unknown> & { kind: "apply" | "replay" } }
  | { readonly kind: "refused"; readonly error: BillingError };

export const outcomeKey = (scope: OutcomeScope, key: string) => `${scope}:${key}`;

const MANUAL = { automatic: false };

/**
 * Plans a customer's writes one after another on the state the earlier ones leave, as if each
 * ran alone in that order: account figures and the balance move with each applied plan. Null
 * when the loaded state cannot decide one of them (a customer with more accounts than were read,
 * an overage, a hold of another customer): the group then runs write by write.
 */
export function planGroup(state: GroupState, writes: readonly GroupWrite[], nowMs: number): GroupPlanned[] | null {
  const accounts = new Map<bigint, AccountSnapshot>();
  for (const a of state.spendable) accounts.set(a.id, a);
  for (const h of state.holds.values()) for (const a of h.accounts) accounts.set(a.id, a);
  const settles = writes.some((w) => w.kind !== "spend");
  // Accounts a settlement frees must be spendable in their order; with only the first
  // spendable accounts read, that order is not known.
  if (settles && !state.complete) return null;
  let before = state.before;
  const current = (list: readonly AccountSnapshot[]) => list.map((a) => accounts.get(a.id) ?? a);
  const move = (deltas: readonly AccountDelta[]) => {
    for (const d of deltas) {
      const a = accounts.get(d.accountId);
      if (!a) throw new Error(`account ${d.accountId} moved but not loaded`);
      accounts.set(a.id, { ...a, used: a.used + d.used, frozen: a.frozen + d.frozen });
    }
  };
  const planned: GroupPlanned[] = [];
  for (const w of writes) {
    try {
      if (w.kind === "spend") {
        const spendable = state.complete ? [...accounts.values()].filter((a) => availableOf(a) > 0n) : current(state.spendable);
        const p = planSpend(
          w.spendKind,
          {
            stored: state.outcomes.get(outcomeKey("SPEND", w.request.transactionId)) ?? null,
            customerPk: state.customerPk,
            accounts: spendable,
            complete: state.complete,
            before,
          },
          w.request,
          nowMs,
        );
        if (p.kind === "more" || p.kind === "skip") return null;
        if (p.kind === "apply") {
          move(p.changes.deltas);
          before = p.result.balance;
        }
        planned.push({ kind: "spend", planned: p });
        continue;
      }
      const loaded = state.holds.get(w.request.transactionId);
      if (!loaded) throw new Error(`hold ${w.request.transactionId} not loaded`);
      if (loaded.elsewhere || (loaded.hold !== null && loaded.hold.customerPk !== state.customerPk)) return null;
      const settleState = {
        stored: state.outcomes.get(outcomeKey("SETTLE", w.request.transactionId)) ?? null,
        hold: loaded.hold,
        parts: loaded.parts,
        accounts: current(loaded.accounts),
        spendable: null,
        before,
        expiryRecorded: loaded.expiryRecorded,
        busy: false,
      };
      const p =
        w.kind === "consume" ? planConsume(settleState, w.request, MANUAL, nowMs) : planUnfreeze(settleState, w.request, MANUAL, nowMs);
      if (p.kind === "more" || p.kind === "skip") return null;
      if (p.kind === "apply") {
        move(p.changes.deltas);
        before = p.result.balance;
      }
      planned.push({ kind: "settle", planned: p });
    } catch (error) {
      if (!(error instanceof BillingError)) throw error;
      planned.push({ kind: "refused", error });
    }
  }
  return planned;
}
