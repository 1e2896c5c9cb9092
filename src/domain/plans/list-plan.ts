import type { BillingError } from "../../errors/billing-error.js";
import type { AccountDelta } from "../account-deltas.js";
import { accountStatus, availableOf, compareSpendingOrder, NO_BALANCE } from "../account-status.js";
import { holdKey } from "../customer-ref.js";
import type { AccountSnapshot, Balance } from "../types.js";
import { crossings, finalStates, shiftAvailable } from "../balance-alerts.js";
import { type LedgerPosition, nextPosition } from "../ledger-position.js";
import { accountKeyOf, accountKeyText, PENDING_ACCOUNT_ID, planDeposit } from "./deposit-plan.js";
import { planExpiry } from "./expiry-plan.js";
import { refusable } from "./outcome.js";
import type { LedgerLine, Planned } from "./planned.js";
import { planConsume, planUnfreeze, type SettleChanges, type SettleState } from "./settle-plan.js";
import type { ConsumeResult, UnfreezeResult } from "../results.js";
import { planSpend } from "./spend-plan.js";
import { planRefundStep, planVoidStep, reversalKeysOf } from "./reversal-steps.js";
import type { WorkingCustomer as Working } from "./working-customer.js";
import { PrefetchRaced } from "./prefetch-raced.js";
import {
  type AlertCrossingOf,
  type CreditWrite,
  customersMissingAlerts,
  customerPkOf,
  holdOf,
  holdRefOf,
  type ListPlan,
  type ListState,
  outcomeMapKey,
  outcomeRefOf,
  selectionKey,
  type SweptAccount,
  type WritePlan,
} from "./write-list.js";

/** What one write needs before it can be planned on the state the earlier ones left. */
type Step = { kind: "plan"; plan: WritePlan } | { kind: "cut" } | { kind: "more"; customerPk: bigint };

/** A write with nothing to do now: a sweeper's left for a later pass, or one that found nothing left to do. */
const SKIPPED: Step = { kind: "plan", plan: { kind: "skipped" } };

/**
 * Plans a list of writes one after another on the state the earlier ones leave, as if each ran
 * alone in that order: account figures, balances and stored outcomes move with each applied plan.
 * Pure: the same state and list give the same plans. A refusal is that write's plan; the others
 * go on.
 */
export function planList(state: ListState, writes: readonly CreditWrite[], nowMs: number): ListPlan {
  const unread = customersMissingAlerts(state)[0];
  // A crossing decided without the customer's alerts would be lost: the prefetch reads them first.
  if (unread) throw new Error(`the alerts of customer ${unread.pk} were not read`);
  const working = new Map<bigint, Working>();
  const customer = (pk: bigint): Working | undefined => {
    const known = working.get(pk);
    if (known) return known;
    const loaded = state.customers.get(pk);
    if (!loaded) return undefined;
    const fresh: Working = {
      state: loaded,
      before: loaded.before,
      accounts: new Map(loaded.accounts),
      touched: false,
      newAccounts: new Set(),
      expired: new Set(),
      started: new Set(),
      exists: !loaded.created,
      ledger: loaded.ledger,
      alerts: loaded.alerts,
      available: loaded.available,
    };
    working.set(pk, fresh);
    return fresh;
  };
  const keys = new Set<string>();
  const plans: WritePlan[] = [];
  const positions: LedgerPosition[][] = [];
  const crossed: AlertCrossingOf[][] = [];
  for (const write of writes) {
    const step = dependsOnList(write, keys) ? { kind: "cut" as const } : planOne(state, write, customer, nowMs);
    if (step.kind === "cut") break;
    if (step.kind === "more") return { kind: "more", customerPks: [step.customerPk] };
    plans.push(step.plan);
    const written = recordEntries(step.plan, customer, nowMs);
    positions.push(written.positions);
    crossed.push(written.crossings);
    remember(write, keys);
  }
  const ledgers = new Map<bigint, { from: bigint; to: LedgerPosition }>();
  for (const [pk, c] of working) {
    if (c.ledger.sequence !== c.state.ledger.sequence) ledgers.set(pk, { from: c.state.ledger.sequence, to: c.ledger });
  }
  const alertStates = new Map(crossed.flat().map((c) => [c.alert.alertId, c.crossing.newState] as const));
  return { kind: "planned", plans, positions, ledgers, crossings: crossed, alertStates };
}

/** The entries a plan writes, in the order it writes them, and the customer whose ledger they extend. */
export function writtenEntries(plan: WritePlan): { customerPk: bigint; entries: readonly LedgerLine[] } | null {
  switch (plan.kind) {
    case "deposit": {
      const { changes } = plan;
      const accountId = changes.accountId ?? PENDING_ACCOUNT_ID;
      return {
        customerPk: changes.customerPk,
        entries: [{ operation: "DEPOSIT", accountId, amount: changes.amount, ...changes.accountKey }],
      };
    }
    case "spend":
      return { customerPk: plan.changes.customerPk, entries: plan.changes.lines.map((l) => ({ operation: plan.changes.kind, ...l })) };
    case "settle":
      return { customerPk: plan.changes.hold.customerPk, entries: [...plan.changes.entries, ...plan.changes.expiring] };
    case "expire":
      return { customerPk: plan.changes.customerPk, entries: plan.changes.entries };
    case "refund":
      return { customerPk: plan.changes.charge.customerPk, entries: [...plan.changes.entries, ...plan.changes.expiring] };
    case "void":
      return { customerPk: plan.changes.customerPk, entries: [plan.changes.entry] };
    default:
      return null;
  }
}

/**
 * Numbers a plan's entries in its customer's ledger and computes the balance each leaves
 * (domain/ledger-position.ts). Run before the plan's deltas move the accounts: an expiry removes
 * an account with the figures it had.
 */
function recordEntries(
  plan: WritePlan,
  customer: (pk: bigint) => Working | undefined,
  nowMs: number,
): { positions: LedgerPosition[]; crossings: AlertCrossingOf[] } {
  if (plan.kind === "start") return { positions: [], crossings: crossStarts(workingOf(customer, plan.changes.customerPk)) };
  const written = writtenEntries(plan);
  if (written === null) return { positions: [], crossings: [] };
  const c = workingOf(customer, written.customerPk);
  const changes: (readonly [string, bigint])[] = [];
  const positions = written.entries.map((entry) => {
    const account = c.accounts.get(entry.accountId);
    const removed = c.state.expiryRecorded.has(entry.accountId) || c.expired.has(entry.accountId);
    const active = account ? accountStatus(account, nowMs) === "ACTIVE" : plan.kind === "deposit" && depositIsActive(plan, nowMs);
    if (active) changes.push([entry.creditType, availableChangeOf(entry)]);
    c.ledger = nextPosition(c.ledger, entry, account ? { ...account, removed } : null);
    if (entry.operation === "EXPIRE") c.expired.add(entry.accountId);
    return c.ledger;
  });
  return { positions, crossings: crossAlerts(c, changes) };
}

function workingOf(customer: (pk: bigint) => Working | undefined, pk: bigint): Working {
  const c = customer(pk);
  if (!c) throw new Error("a plan's customer was not prefetched");
  return c;
}

/** A deposit's new account counts in the available balance when it has started and not expired. */
const depositIsActive = (plan: Extract<WritePlan, { kind: "deposit" }>, nowMs: number) =>
  plan.changes.accountKey.startsAtMs <= nowMs && plan.changes.accountKey.expiresAtMs > nowMs;

/** How an entry on an ACTIVE account moves the available balance (total − used − frozen). */
function availableChangeOf(entry: LedgerLine): bigint {
  switch (entry.operation) {
    case "DEPOSIT":
    case "UNFREEZE":
    case "REFUND":
      return entry.amount;
    case "DEDUCT":
    case "FREEZE":
    case "VOID":
      return -entry.amount;
    case "CONSUME":
      return entry.overage ? -entry.amount : 0n;
    case "EXPIRE":
      return 0n;
  }
}

/**
 * The alerts decided again at a record of starts. It moves no figure: the prefetch summed the
 * started accounts in `available` already. The customer's first record of the list brings in
 * every start that has come and is not recorded, this list's and those a later pass records (the
 * alerts' stored states catch up with them, from the balances without them); its next records,
 * nothing more.
 */
function crossStarts(c: Working): AlertCrossingOf[] {
  if (c.started.size > 1) return crossAlerts(c, []);
  const arriving = [...(c.state.startsArriving ?? [])];
  c.available = shiftAvailable(
    c.available,
    arriving.map(([creditType, amount]) => [creditType, -amount] as const),
  );
  return crossAlerts(c, arriving);
}

/** The customer's alerts crossed by a write's change of the available balances; their states move on. */
function crossAlerts(c: Working, changes: readonly (readonly [string, bigint])[]): AlertCrossingOf[] {
  if (c.alerts.length === 0) return [];
  const after = shiftAvailable(c.available, changes);
  const found = crossings(c.alerts, c.available, after);
  const byId = new Map(c.alerts.map((a) => [a.alertId, a]));
  const result = found.flatMap((crossing) => {
    const alert = byId.get(crossing.alertId);
    return alert ? [{ alert, crossing }] : [];
  });
  const states = finalStates(found);
  c.alerts = c.alerts.map((a) => ({ ...a, state: states.get(a.alertId) ?? a.state }));
  c.available = after;
  return result;
}

/** The keys a write uses: its stored outcome's and its hold's. */
function keysOf(write: CreditWrite): string[] {
  const outcome = outcomeRefOf(write);
  const hold = holdRefOf(write);
  return [...(outcome ? [outcomeMapKey(outcome)] : []), ...(hold ? [`hold:${holdKey(hold)}`] : []), ...reversalKeysOf(write)];
}

/** A write whose key an earlier write of the list used (a repeat, a settlement of a hold the list creates). */
const dependsOnList = (write: CreditWrite, keys: ReadonlySet<string>) => keysOf(write).some((k) => keys.has(k));

function remember(write: CreditWrite, keys: Set<string>): void {
  for (const k of keysOf(write)) keys.add(k);
}

function planOne(state: ListState, write: CreditWrite, customer: (pk: bigint) => Working | undefined, nowMs: number): Step {
  switch (write.kind) {
    case "deposit":
      return planDepositStep(state, write, customer, nowMs);
    case "spend":
      return planSpendStep(state, write, customer, nowMs);
    case "consume":
    case "unfreeze":
      return planSettleStep(state, write, customer, nowMs);
    case "expire":
      return planExpiryStep(state, write, customer);
    case "start":
      return planStartStep(state, write, customer, nowMs);
    case "refund":
      return planRefundStep(state, write, customer, nowMs);
    case "void":
      return planVoidStep(state, write, customer, nowMs);
  }
}

const storedOf = (state: ListState, write: CreditWrite) => {
  const ref = outcomeRefOf(write);
  return ref === null ? null : (state.outcomes.get(outcomeMapKey(ref)) ?? null);
};

/** Moves the accounts a plan changed, and the customer's balance to what the plan answered. */
function move(c: Working, deltas: readonly AccountDelta[], balance: Balance): void {
  for (const d of deltas) {
    const a = c.accounts.get(d.accountId);
    if (!a) throw new Error(`account ${d.accountId} moved but not loaded`);
    c.accounts.set(a.id, { ...a, used: a.used + d.used, frozen: a.frozen + d.frozen });
  }
  c.before = balance;
}

function asStep<C, R>(
  planned: Planned<C, R> | { readonly kind: "refused"; readonly error: BillingError },
  applied: (p: { changes: C; result: R }) => WritePlan,
): Step | null {
  switch (planned.kind) {
    case "apply":
      return { kind: "plan", plan: applied(planned) };
    case "replay":
      return { kind: "plan", plan: { kind: "replay", stored: planned.stored } };
    case "refused":
      return { kind: "plan", plan: planned };
    case "skip":
      return SKIPPED;
    case "more":
      return null;
  }
}

function planDepositStep(
  state: ListState,
  write: Extract<CreditWrite, { kind: "deposit" }>,
  customer: (pk: bigint) => Working | undefined,
  nowMs: number,
): Step {
  const { request } = write;
  const pk = customerPkOf(state, request);
  const c = pk === undefined ? undefined : customer(pk);
  // The prefetch creates a deposit's customer: a missing one is a bug of the prefetch.
  if (pk === undefined || c === undefined) throw new Error("a deposit's customer was not prefetched");
  const key = accountKeyOf(request);
  if (c.newAccounts.has(accountKeyText(key))) return { kind: "cut" };
  const account =
    [...c.accounts.values()].find(
      (a) =>
        a.creditType === key.creditType && a.source === key.source && a.startsAtMs === key.startsAtMs && a.expiresAtMs === key.expiresAtMs,
    ) ?? null;
  const planned = refusable(() =>
    planDeposit({ stored: storedOf(state, write), customerPk: pk, before: c.before, ledgerTotal: c.ledger.total, account }, write, nowMs),
  );
  const step = asStep(planned, (p) => {
    c.before = p.result.balance;
    c.touched = true;
    c.exists = true;
    if (account) c.accounts.set(account.id, { ...account, total: account.total + request.amount });
    else c.newAccounts.add(accountKeyText(key));
    return { kind: "deposit", changes: p.changes, result: p.result };
  });
  if (step === null) throw new Error("a deposit never needs more state");
  return step;
}

/** Spendable accounts of a selection, in spending order, as the earlier writes of the list left them. */
function spendableOf(c: Working, creditTypes: readonly string[], nowMs: number): AccountSnapshot[] {
  const selected = (a: AccountSnapshot) => creditTypes.length === 0 || creditTypes.includes(a.creditType);
  return [...c.accounts.values()]
    .filter((a) => selected(a) && availableOf(a) > 0n && accountStatus(a, nowMs) === "ACTIVE")
    .sort(compareSpendingOrder);
}

/**
 * The accounts of a selection a spend may take from: all of them when the selection was read
 * whole; else only those up to where its read stopped (none when it was not read), since an
 * account past that point may come after accounts not read, which must be spent first.
 */
const readInOrder = (spendable: readonly AccountSnapshot[], readThrough: AccountSnapshot | null | undefined): AccountSnapshot[] => {
  if (readThrough === null) return [...spendable];
  return readThrough === undefined ? [] : spendable.filter((a) => compareSpendingOrder(a, readThrough) <= 0);
};

function planSpendStep(
  state: ListState,
  write: Extract<CreditWrite, { kind: "spend" }>,
  customer: (pk: bigint) => Working | undefined,
  nowMs: number,
): Step {
  const { request } = write;
  const found = customerPkOf(state, request);
  const c = found === undefined ? undefined : customer(found);
  if (c && c.newAccounts.size > 0) return { kind: "cut" };
  // A customer only the list's own later deposit creates does not exist yet for this write.
  const pk = c?.exists ? found : undefined;
  // Every account the list's deposits and settlements free is read (by key, with its hold), so a
  // selection read whole stays whole. With only its first spendable accounts read, what they free
  // may come before those not read: only a full read knows the order.
  const readThrough = c?.state.selectionsRead.get(selectionKey(request.creditTypes));
  const complete = c === undefined || c.state.allSpendable || readThrough === null;
  if (c !== undefined && found !== undefined && !complete && c.touched) return { kind: "more", customerPk: found };
  const planned = refusable(() =>
    planSpend(
      write.spendKind,
      {
        stored: storedOf(state, write),
        customerPk: pk ?? null,
        accounts: c === undefined ? [] : readInOrder(spendableOf(c, request.creditTypes, nowMs), complete ? null : readThrough),
        complete,
        before: c?.before ?? NO_BALANCE,
      },
      write,
      nowMs,
    ),
  );
  const step = asStep(planned, (p) => {
    if (c) move(c, p.changes.deltas, p.result.balance);
    return { kind: "spend", changes: p.changes, result: p.result };
  });
  if (step) return step;
  // A spend asks for more accounts only of a customer it found with balance left to read.
  if (pk === undefined) throw new Error("a spend of a customer not read asked for more accounts");
  return { kind: "more", customerPk: pk };
}

/** A settlement's state from the list's: the hold, its accounts as the earlier writes left them, the spendable ones once read. */
function settleStateOf(
  state: ListState,
  write: Extract<CreditWrite, { kind: "consume" | "unfreeze" }>,
  c: Working | undefined,
  nowMs: number,
): SettleState {
  const loaded = holdOf(state, write.request);
  const hold = loaded?.hold ?? null;
  const parts = loaded?.parts ?? [];
  const accountsOfHold = parts.flatMap((p) => {
    const a = c?.accounts.get(p.accountId);
    return a ? [a] : [];
  });
  const allRead = c?.state.allSpendable === true;
  return {
    stored: storedOf(state, write),
    hold,
    parts,
    accounts: allRead && c ? [...c.accounts.values()] : accountsOfHold,
    spendable: allRead && c && hold ? spendableOf(c, hold.creditTypes, nowMs) : null,
    before: c?.before ?? NO_BALANCE,
    expiryRecorded: new Set([...(c?.state.expiryRecorded ?? []), ...(c?.expired ?? [])]),
    busy: hold !== null && state.busy.has(hold.customerPk),
  };
}

function planSettleStep(
  state: ListState,
  write: Extract<CreditWrite, { kind: "consume" | "unfreeze" }>,
  customer: (pk: bigint) => Working | undefined,
  nowMs: number,
): Step {
  const hold = holdOf(state, write.request)?.hold ?? null;
  const c = hold === null ? undefined : customer(hold.customerPk);
  // The sweeper's prefetch may find the hold but not its customer, locked elsewhere (on Galera its
  // statements are separate round trips): the customer is busy and the hold waits for a later pass.
  if (hold !== null && c === undefined && !state.busy.has(hold.customerPk)) throw new PrefetchRaced("hold");
  if (c && c.newAccounts.size > 0) return { kind: "cut" };
  const settleState = settleStateOf(state, write, c, nowMs);
  const applied = (p: { changes: SettleChanges; result: ConsumeResult | UnfreezeResult }): WritePlan => {
    if (c) {
      move(c, p.changes.deltas, p.result.balance);
      c.touched = true;
    }
    return { kind: "settle", changes: p.changes, result: p.result };
  };
  const step =
    write.kind === "consume"
      ? asStep(
          refusable(() => planConsume(settleState, write, write.mode, nowMs)),
          applied,
        )
      : asStep(
          refusable(() => planUnfreeze(settleState, write, write.mode, nowMs)),
          applied,
        );
  if (step) return step;
  // A settlement asks for more accounts only of a hold it found (none: transaction_not_found).
  if (hold === null) throw new Error("a settlement of a hold not read asked for more accounts");
  return { kind: "more", customerPk: hold.customerPk };
}

/** The customer and account a sweeper's record names, as the prefetch read them; null when its customer is busy or the account was not read. */
function sweptAccountOf(
  state: ListState,
  account: SweptAccount,
  customer: (pk: bigint) => Working | undefined,
): { c: Working; snapshot: AccountSnapshot } | null {
  const c = state.busy.has(account.customerPk) ? undefined : customer(account.customerPk);
  const snapshot = c?.accounts.get(account.accountId);
  return c && snapshot ? { c, snapshot } : null;
}

function planExpiryStep(
  state: ListState,
  write: Extract<CreditWrite, { kind: "expire" }>,
  customer: (pk: bigint) => Working | undefined,
): Step {
  const { account } = write;
  const read = sweptAccountOf(state, account, customer);
  // Recorded meanwhile, or its customer busy: nothing to do now (the sweeper never waits).
  if (!read || read.c.state.expiryRecorded.has(read.snapshot.id) || read.c.expired.has(read.snapshot.id)) return SKIPPED;
  return { kind: "plan", plan: { kind: "expire", changes: planExpiry(account.projectId, account.customerPk, read.snapshot) } };
}

/**
 * The sweeper's record of an account that started: nothing to write but the mark, and the
 * customer's alerts decided again (recordEntries). Skipped when it is recorded already, has not
 * started (a clock behind the one that listed it), or its customer is busy.
 */
function planStartStep(
  state: ListState,
  write: Extract<CreditWrite, { kind: "start" }>,
  customer: (pk: bigint) => Working | undefined,
  nowMs: number,
): Step {
  const { account } = write;
  const read = sweptAccountOf(state, account, customer);
  if (!read) return SKIPPED;
  const { c, snapshot } = read;
  if (!c.state.startsUnrecorded?.has(snapshot.id) || snapshot.startsAtMs > nowMs || c.started.has(snapshot.id)) return SKIPPED;
  c.started.add(snapshot.id);
  return { kind: "plan", plan: { kind: "start", changes: account } };
}
