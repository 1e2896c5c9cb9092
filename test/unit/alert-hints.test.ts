import { describe, expect, it } from "vitest";
import { AlertHints } from "../../src/operations/alert-hints.js";
import type { CustomerState, ListState } from "../../src/domain/plans/write-list.js";

const customer = (customerId: string, hasAlerts: boolean): CustomerState => ({
  pk: BigInt(customerId.length),
  ref: { projectId: 1n, customerId },
  before: { total: 0n, used: 0n, frozen: 0n, available: 0n },
  accounts: new Map(),
  expiryRecorded: new Set(),
  selectionsRead: new Map(),
  allSpendable: false,
  created: false,
  ledger: { sequence: 0n, total: 0n, used: 0n, frozen: 0n },
  hasAlerts,
  alerts: [],
  available: { all: 0n, byCreditType: new Map() },
  alertsRead: false,
});
const stateOf = (...customers: CustomerState[]): ListState => ({
  customers: new Map(customers.map((c) => [c.pk, c])),
  customerPks: new Map(),
  holds: new Map(),
  outcomes: new Map(),
  busy: new Set(),
});
const ref = (customerId: string) => ({ projectId: 1n, customerId });

describe("AlertHints", () => {
  it("guesses alerts for a customer last seen with them, and forgets it once seen without", () => {
    const hints = new AlertHints();
    expect(hints.likely(ref("a"))).toBe(false);
    hints.learn(stateOf(customer("a", true), customer("bb", false)));
    expect([hints.likely(ref("a")), hints.likely(ref("bb"))]).toEqual([true, false]);
    expect(hints.likely({ projectId: 2n, customerId: "a" })).toBe(false);
    hints.learn(stateOf(customer("a", false)));
    expect(hints.likely(ref("a"))).toBe(false);
  });

  it("forgets everything when full rather than grow", () => {
    const hints = new AlertHints(2);
    hints.learn(stateOf(customer("a", true), customer("bb", true)));
    hints.learn(stateOf(customer("ccc", true)));
    expect([hints.likely(ref("a")), hints.likely(ref("bb")), hints.likely(ref("ccc"))]).toEqual([false, false, true]);
  });
});
