import { describe, expect, it } from "vitest";
import { account } from "../support/accounts.js";
import type { AlertState, BalanceAlert } from "../../src/domain/balance-alerts.js";
import type { Hold } from "../../src/domain/hold.js";
import { planList } from "../../src/domain/plans/list-plan.js";
import {
  type CreditWrite,
  type CustomerState,
  consumeWrite,
  depositWrite,
  type ListPlan,
  type ListState,
  spendWrite,
} from "../../src/domain/plans/write-list.js";

// The pipeline's list planner, without a database: each write sees what the earlier ones did.

const NOW = 1_800_000_000_000;
const spendRequest = (transactionId: string, amount: bigint, customerId = "c1") => ({
  projectId: 1n,
  apiKeyId: null,
  customerId,
  transactionId,
  amount,
  creditTypes: [],
  businessType: 0,
  description: "",
  metadata: {},
  autoSettlement: null,
});
const freeze = (transactionId: string, amount: bigint, customerId = "c1"): CreditWrite =>
  spendWrite("FREEZE", spendRequest(transactionId, amount, customerId));
const deposit = (customerId: string, amount: bigint, expiresAtMs: number | null = null): CreditWrite =>
  depositWrite({
    projectId: 1n,
    apiKeyId: null,
    customerId,
    amount,
    idempotencyKey: null,
    creditType: "default",
    source: "default",
    startsAtMs: null,
    expiresAtMs,
    name: "",
    email: "",
    description: "",
    metadata: {},
  });
const consume = (transactionId: string, actualAmount: bigint): CreditWrite =>
  consumeWrite({ projectId: 1n, apiKeyId: null, transactionId, customerId: null, actualAmount, allowOverage: false }, { automatic: false });
const hold: Hold = {
  pk: 9n,
  transactionId: "old",
  customerPk: 7n,
  customerId: "c1",
  kind: "FREEZE",
  status: "FROZEN",
  amount: 40n,
  consumedAmount: 0n,
  settledAutomatically: false,
  creditTypes: [],
  businessType: 0,
  description: "",
  metadata: {},
};
const customer = (over: Partial<CustomerState> = {}): CustomerState => ({
  pk: 7n,
  ref: { projectId: 1n, customerId: "c1" },
  before: { total: 100n, used: 0n, frozen: 40n, available: 60n },
  accounts: new Map([[1n, account(1n, { frozen: 40n })]]),
  expiryRecorded: new Set(),
  selectionsRead: new Map([["", null]]),
  allSpendable: false,
  created: false,
  ledger: { sequence: 3n, total: 100n, used: 0n, frozen: 40n },
  hasAlerts: false,
  alerts: [],
  available: { all: 60n, byCreditType: new Map([["default", 60n]]) },
  alertsRead: false,
  ...over,
});
/** Alert 5 of customer c1 over every credit type. */
const alertOf = (threshold: bigint, state: AlertState): BalanceAlert => ({
  alertId: 5n,
  projectId: 1n,
  customerId: "c1",
  creditType: null,
  threshold,
  state,
  createdAtMs: NOW,
  updatedAtMs: NOW,
});
const stateOf = (customers: CustomerState[]): ListState => ({
  customers: new Map(customers.map((c) => [c.pk, c])),
  customerPks: new Map(customers.map((c) => [`${c.ref.projectId}:${c.ref.customerId}`, c.pk])),
  holds: new Map([["1:old", { hold, parts: [{ accountId: 1n, amount: 40n }] }]]),
  outcomes: new Map(),
  busy: new Set(),
});
const answers = (plan: ListPlan) => {
  if (plan.kind !== "planned") return plan;
  return plan.plans.map((p) => {
    if (p.kind === "refused") return p.error.code;
    if (p.kind === "spend" || p.kind === "settle" || p.kind === "deposit") return p.result.balance;
    return p.kind;
  });
};

describe("planList", () => {
  it("plans each write on the state the earlier ones leave, a refusal changing nothing", () => {
    const planned = planList(stateOf([customer()]), [freeze("a", 50n), freeze("b", 20n), consume("old", 10n), freeze("c", 20n)], NOW);
    expect(answers(planned)).toEqual([
      { total: 100n, used: 0n, frozen: 90n, available: 10n },
      "insufficient_balance",
      { total: 100n, used: 10n, frozen: 50n, available: 40n },
      { total: 100n, used: 10n, frozen: 70n, available: 20n },
    ]);
  });

  it("bounds deposits by the ledger total, which still counts an account past its expiry until the sweeper records it", () => {
    const MAX = 2n ** 53n - 1n;
    // The ACTIVE balance is 100, but the ledger also holds an expired account's MAX - 300 credits.
    const loaded = customer({ ledger: { sequence: 3n, total: MAX - 200n, used: 0n, frozen: 40n } });
    expect(answers(planList(stateOf([loaded]), [deposit("c1", 150n), deposit("c1", 51n)], NOW))).toEqual([
      { total: 250n, used: 0n, frozen: 40n, available: 210n },
      "invalid_argument",
    ]);
  });

  it("skips an automatic settlement whose hold was read but whose customer was locked elsewhere (the sweeper's busy customer)", () => {
    const automatic = consumeWrite(
      { projectId: 1n, apiKeyId: null, transactionId: "old", customerId: null, actualAmount: null, allowOverage: false },
      { automatic: true },
    );
    const busy: ListState = { ...stateOf([]), busy: new Set([7n]) };
    const planned = planList(busy, [automatic], NOW);
    expect(planned.kind === "planned" && planned.plans.map((p) => p.kind)).toEqual(["skipped"]);
  });

  it("asks for all of a customer's accounts when the first ones do not cover a spend", () => {
    const truncated = stateOf([customer({ selectionsRead: new Map([["", account(1n, { frozen: 40n })]]) })]);
    expect(planList(truncated, [freeze("a", 61n)], NOW)).toEqual({ kind: "more", customerPks: [7n] });
    expect(answers(planList(truncated, [freeze("a", 60n)], NOW))).toEqual([{ total: 100n, used: 0n, frozen: 100n, available: 0n }]);
  });

  it("takes only accounts up to where its selection's read stopped: one read for another selection may lie past unread ones", () => {
    // Read for "" through account 1 (the first ones); account 3, later in spending order, was read
    // for another selection: accounts between them may exist unread and must be spent first.
    const accounts = new Map([
      [1n, account(1n, { frozen: 40n, expiresAtMs: NOW + 1000 })],
      [3n, account(3n, { creditType: "x", expiresAtMs: NOW + 3000 })],
    ]);
    const frontier = accounts.get(1n);
    if (!frontier) throw new Error("fixture");
    const state = stateOf([customer({ accounts, selectionsRead: new Map([["", frontier]]) })]);
    expect(planList(state, [freeze("a", 61n)], NOW)).toEqual({ kind: "more", customerPks: [7n] });
    expect(answers(planList(state, [freeze("a", 60n)], NOW))).toEqual([{ total: 100n, used: 0n, frozen: 100n, available: 0n }]);
  });

  it("asks for all accounts before a spend that follows a settlement freeing credits, when only the first were read", () => {
    const truncated = stateOf([customer({ selectionsRead: new Map([["", account(1n, { frozen: 40n })]]) })]);
    expect(planList(truncated, [consume("old", 0n), freeze("a", 1n)], NOW)).toEqual({ kind: "more", customerPks: [7n] });
  });

  it("crosses a customer's alert once its alerts are read, and refuses to plan before they are", () => {
    const alert = alertOf(30n, "armed");
    const unread = stateOf([customer({ hasAlerts: true })]);
    expect(() => planList(unread, [freeze("a", 40n)], NOW)).toThrow("the alerts of customer 7 were not read");
    const read = stateOf([customer({ hasAlerts: true, alerts: [alert], alertsRead: true })]);
    const planned = planList(read, [freeze("a", 40n), freeze("b", 5n)], NOW);
    if (planned.kind !== "planned") throw new Error("expected a plan");
    expect(planned.crossings.map((c) => c.map((x) => x.crossing.eventType))).toEqual([["balance.low"], []]);
    expect(planned.alertStates).toEqual(new Map([[5n, "low"]]));
  });

  it("records an account's start once, deciding the customer's alerts again on the balance that now counts it", () => {
    const low = alertOf(100n, "low");
    const started = account(2n, { total: 90n, startsAtMs: NOW - 1 });
    const later = account(3n, { total: 5n, startsAtMs: NOW + 1 });
    const start = (accountId: bigint): CreditWrite => ({ kind: "start", account: { projectId: 1n, customerPk: 7n, accountId } });
    // The prefetch summed the started account in `available` (60 + 90); the alert was left low, at 60.
    const state = stateOf([
      customer({
        accounts: new Map([
          [1n, account(1n, { frozen: 40n })],
          [2n, started],
          [3n, later],
        ]),
        startsUnrecorded: new Set([2n, 3n]),
        // What the customer's started, unrecorded accounts hold: account 2's 90 (3 has not started).
        startsArriving: new Map([["default", 90n]]),
        hasAlerts: true,
        alerts: [low],
        alertsRead: true,
        available: { all: 150n, byCreditType: new Map([["default", 150n]]) },
      }),
    ]);
    const planned = planList(state, [start(2n), start(2n), start(3n), start(4n)], NOW);
    if (planned.kind !== "planned") throw new Error("expected a plan");
    // The same account twice is recorded once; one not started yet, or not read (recorded meanwhile), is skipped.
    expect(planned.plans.map((p) => p.kind)).toEqual(["start", "skipped", "skipped", "skipped"]);
    expect(
      planned.crossings.map((c) => c.map((x) => [x.crossing.eventType, x.crossing.availableBefore, x.crossing.availableAfter])),
    ).toEqual([[["balance.recovered", 60n, 150n]], [], [], []]);
    expect(planned.alertStates).toEqual(new Map([[5n, "armed"]]));
    expect(planned.positions).toEqual([[], [], [], []]);
    expect(planned.ledgers).toEqual(new Map());
    // Credits starting in accounts a later pass records count as arriving too: the crossing reads from without them all.
    const split = planList(
      {
        ...state,
        customers: new Map([[7n, { ...(state.customers.get(7n) as CustomerState), startsArriving: new Map([["default", 140n]]) }]]),
      },
      [start(2n)],
      NOW,
    );
    expect(split).toMatchObject({
      crossings: [[{ crossing: { eventType: "balance.recovered", availableBefore: 10n, availableAfter: 150n } }]],
    });
    // Its customer locked elsewhere: left for a later sweep.
    expect(planList({ ...state, busy: new Set([7n]) }, [start(2n)], NOW)).toMatchObject({ plans: [{ kind: "skipped" }] });
  });

  it("cuts the list before a write that uses a key of an earlier one (a repeat, a settlement of a hold the list creates)", () => {
    const state = stateOf([customer()]);
    expect(answers(planList(state, [freeze("a", 10n), freeze("b", 10n), freeze("a", 10n)], NOW))).toHaveLength(2);
    expect(answers(planList(state, [freeze("n", 10n), consume("n", 5n)], NOW))).toHaveLength(1);
  });

  it("cuts the list after a deposit that creates an account, before the next write of its customer that needs its id", () => {
    const state = stateOf([customer()]);
    const planned = planList(state, [deposit("c1", 5n, NOW + 1000), freeze("a", 10n)], NOW);
    expect(answers(planned)).toEqual([{ total: 105n, used: 0n, frozen: 40n, available: 65n }]);
    // Deposits into other new accounts go on in the same segment; one into an account the list creates waits.
    const deposits = planList(state, [deposit("c1", 5n, NOW + 1000), deposit("c1", 6n, NOW + 2000), deposit("c1", 7n, NOW + 1000)], NOW);
    expect(answers(deposits)).toEqual([
      { total: 105n, used: 0n, frozen: 40n, available: 65n },
      { total: 111n, used: 0n, frozen: 40n, available: 71n },
    ]);
    // Into an account that exists, the next write goes on in the same segment.
    const existing = planList(state, [deposit("c1", 5n), freeze("a", 10n)], NOW);
    expect(answers(existing)).toEqual([
      { total: 105n, used: 0n, frozen: 40n, available: 65n },
      { total: 105n, used: 0n, frozen: 50n, available: 55n },
    ]);
  });

  it("answers customer_not_found to a spend before the deposit of the list that creates its customer", () => {
    const created = customer({
      pk: 8n,
      ref: { projectId: 1n, customerId: "new" },
      before: { total: 0n, used: 0n, frozen: 0n, available: 0n },
      accounts: new Map(),
      created: true,
    });
    const planned = planList(stateOf([created]), [freeze("a", 1n, "new"), deposit("new", 5n)], NOW);
    expect(answers(planned)).toEqual(["customer_not_found", { total: 5n, used: 0n, frozen: 0n, available: 5n }]);
  });

  it("replays a stored outcome read under the lock, and refuses the same key with other parameters", () => {
    const state = stateOf([customer()]);
    const first = planList(state, [freeze("a", 10n)], NOW);
    if (first.kind !== "planned" || first.plans[0]?.kind !== "spend") throw new Error("expected a spend");
    const stored = { customerId: "c1", requestFingerprint: first.plans[0].changes.envelope.requestFingerprint, response: "{}" };
    const withStored = { ...state, outcomes: new Map([["SPEND:1:a", stored]]) };
    expect(answers(planList(withStored, [freeze("a", 10n)], NOW))).toEqual(["replay"]);
    expect(answers(planList(withStored, [freeze("a", 11n)], NOW))).toEqual(["idempotency_conflict"]);
  });
});
