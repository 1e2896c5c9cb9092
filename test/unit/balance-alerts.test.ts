import { describe, expect, it } from "vitest";
import {
  type AlertState,
  type AvailableBalances,
  type BalanceAlert,
  alertEventOf,
  crossings,
  finalStates,
  shiftAvailable,
  stateFor,
} from "../../src/domain/balance-alerts.js";

const alert = (state: AlertState, threshold = 100n, creditType: string | null = null, alertId = 1n): BalanceAlert => ({
  alertId,
  projectId: 1n,
  customerId: "c",
  creditType,
  threshold,
  state,
  createdAtMs: 0,
  updatedAtMs: 0,
});
const all = (available: bigint, byType: Record<string, bigint> = {}): AvailableBalances => ({
  all: available,
  byCreditType: new Map(Object.entries(byType)),
});
const events = (a: BalanceAlert, before: bigint, after: bigint) =>
  crossings([a], all(before), all(after)).map((c) => [c.eventType, c.newState]);

describe("stateFor", () => {
  it.each([
    [100n, 100n, "armed"],
    [100n, 101n, "armed"],
    [100n, 99n, "low"],
    [100n, 1n, "low"],
    [100n, 0n, "depleted"],
    [100n, -5n, "depleted"],
    [1n, 0n, "depleted"],
    [1n, 1n, "armed"],
  ] as const)("threshold %s, available %s → %s", (threshold, available, state) => {
    expect(stateFor(threshold, available)).toBe(state);
  });
});

describe("shiftAvailable", () => {
  it("moves each credit type and the total by the write's changes, a new type from 0", () => {
    const after = shiftAvailable(all(100n, { paid: 60n, free: 40n }), [
      ["paid", -50n],
      ["free", 10n],
      ["gift", 5n],
      ["paid", -10n],
    ]);
    expect(after.all).toBe(55n);
    expect([...after.byCreditType]).toEqual([
      ["paid", 0n],
      ["free", 50n],
      ["gift", 5n],
    ]);
  });
});

describe("crossings", () => {
  it.each([
    ["armed, stays at the threshold", "armed", 150n, 100n, []],
    ["armed, goes just below", "armed", 100n, 99n, [["balance.low", "low"]]],
    [
      "armed, goes to 0 in one write",
      "armed",
      150n,
      0n,
      [
        ["balance.low", "depleted"],
        ["balance.depleted", "depleted"],
      ],
    ],
    ["low, goes lower: nothing again", "low", 99n, 10n, []],
    ["low, reaches 0", "low", 10n, 0n, [["balance.depleted", "depleted"]]],
    ["depleted, stays at 0", "depleted", 0n, 0n, []],
    ["depleted, a small top-up below the threshold: silent, re-arms depleted", "depleted", 0n, 50n, [[null, "low"]]],
    ["depleted, back to the threshold", "depleted", 0n, 100n, [["balance.recovered", "armed"]]],
    ["low, back above", "low", 50n, 500n, [["balance.recovered", "armed"]]],
    ["low, credits started meanwhile, a deduct leaves it above: recovered", "low", 300n, 200n, [["balance.recovered", "armed"]]],
    ["armed, a deposit: nothing", "armed", 100n, 1000n, []],
  ] as const)("%s", (_name, state, before, after, expected) => {
    expect(events(alert(state), before, after)).toEqual(expected);
  });

  it("an alert on one credit type reads that type's available (0 when it has none)", () => {
    const paid = alert("armed", 10n, "paid", 2n);
    const total = alert("armed", 10n, null, 3n);
    const result = crossings([paid, total], all(100n, { paid: 20n, free: 80n }), all(85n, { paid: 5n, free: 80n }));
    expect(result.map((c) => [c.alertId, c.eventType, c.availableBefore, c.availableAfter])).toEqual([[2n, "balance.low", 20n, 5n]]);
    expect(crossings([alert("armed", 10n, "gone")], all(5n), all(5n)).map((c) => c.eventType)).toEqual(["balance.low", "balance.depleted"]);
  });

  it("the last state of each alert is what the write stores", () => {
    const list = crossings([alert("armed", 100n, null, 1n), alert("low", 50n, null, 2n)], all(120n), all(0n));
    expect([...finalStates(list)]).toEqual([
      [1n, "depleted"],
      [2n, "depleted"],
    ]);
  });

  it("a crossing with an event becomes a feed event with the alert's facts", () => {
    const a = alert("armed", 100n, "paid", 9n);
    const [low] = crossings([a], all(0n, { paid: 120n }), all(0n, { paid: 40n }));
    if (!low) throw new Error("expected a crossing");
    expect(alertEventOf(a, low, { eventId: "d1-x", transactionId: "job-7" }, 5)).toEqual({
      eventId: "d1-x",
      projectId: 1n,
      customerId: "c",
      type: "balance.low",
      transactionId: "job-7",
      payload: {
        entries: [],
        balanceAfter: null,
        data: { alert_id: "9", threshold: "100", credit_type: "paid", available_before: "120", available: "40" },
      },
      nowMs: 5,
    });
    expect(alertEventOf(a, { ...low, eventType: null }, { eventId: "d1-y", transactionId: null }, 5)).toBeNull();
  });
});
