import { describe, expect, it } from "vitest";
import { decideConsume, decideUnfreeze, splitConsume, type HoldState } from "../../src/domain/hold.js";
import { codeOf } from "../support/code-of.js";
import { TRANSACTION_STATUSES, type TransactionStatus } from "../../src/domain/types.js";
import { oneOf } from "../../src/store/row-values.js";

const hold = (over: Partial<HoldState> = {}): HoldState => ({
  kind: "FREEZE",
  status: "FROZEN",
  amount: 600n,
  consumedAmount: 0n,
  settledAutomatically: false,
  ...over,
});

describe("hold state machine", () => {
  it.each([
    ["FROZEN", {}, 100n, "apply"],
    ["CONSUMED with the same actual amount", { status: "CONSUMED", consumedAmount: 100n }, 100n, "replay"],
    ["CONSUMED whole, repeated without actual", { status: "CONSUMED", consumedAmount: 600n }, null, "replay"],
  ] as const)("consume of %s → %s", (_name, over, actual, decision) => {
    expect(decideConsume(hold(over), actual)).toBe(decision);
  });

  it.each([
    ["unknown", null, "no_consumable_freeze_records"],
    ["a deduction", hold({ kind: "DEDUCT", status: "DEDUCTED" }), "no_consumable_freeze_records"],
    ["CONSUMED with another amount", hold({ status: "CONSUMED", consumedAmount: 100n }), "freeze_records_already_consumed"],
    ["UNFROZEN by a caller", hold({ status: "UNFROZEN" }), "no_consumable_freeze_records"],
    ["UNFROZEN by the sweeper", hold({ status: "UNFROZEN", settledAutomatically: true }), "freeze_auto_unfrozen"],
  ])("consume of %s fails with %s", (_name, state, code) => {
    expect(codeOf(() => decideConsume(state, 200n))).toBe(code);
  });

  it("unfreeze: FROZEN applies, UNFROZEN replays, the rest fail", () => {
    expect(decideUnfreeze(hold())).toBe("apply");
    expect(decideUnfreeze(hold({ status: "UNFROZEN" }))).toBe("replay");
    expect(codeOf(() => decideUnfreeze(hold({ status: "CONSUMED" })))).toBe("no_unfreezable_records");
    expect(codeOf(() => decideUnfreeze(null))).toBe("no_unfreezable_records");
    expect(codeOf(() => decideUnfreeze(hold({ kind: "DEDUCT", status: "DEDUCTED" })))).toBe("no_unfreezable_records");
  });
});

describe("splitConsume", () => {
  const parts = [
    { accountId: 1n, amount: 500n },
    { accountId: 2n, amount: 100n },
  ];
  it.each([
    [
      400n,
      [[1n, 400n]],
      [
        [1n, 100n],
        [2n, 100n],
      ],
      0n,
    ],
    [
      0n,
      [],
      [
        [1n, 500n],
        [2n, 100n],
      ],
      0n,
    ],
    [
      600n,
      [
        [1n, 500n],
        [2n, 100n],
      ],
      [],
      0n,
    ],
    [
      550n,
      [
        [1n, 500n],
        [2n, 50n],
      ],
      [[2n, 50n]],
      0n,
    ],
    [
      650n,
      [
        [1n, 500n],
        [2n, 100n],
      ],
      [],
      50n,
    ],
  ])("actual %s", (actual, charges, returns, overage) => {
    const split = splitConsume(parts, actual, true);
    expect(split.charges.map((p) => [p.accountId, p.amount])).toEqual(charges);
    expect(split.returns.map((p) => [p.accountId, p.amount])).toEqual(returns);
    expect(split.overage).toBe(overage);
  });

  it("refuses overage unless allowed", () => {
    expect(codeOf(() => splitConsume(parts, 601n, false))).toBe("actual_amount_exceeds_frozen_amount");
  });
});

describe("a status outside the closed set", () => {
  // Parsing at read time refuses it first; the decisions refuse it too rather than fall through.
  const bogus = hold({ status: "BOGUS" as unknown as TransactionStatus });
  it("is freeze_records_inconsistent for Consume and Unfreeze", () => {
    expect(codeOf(() => decideConsume(bogus, null))).toBe("freeze_records_inconsistent");
    expect(codeOf(() => decideUnfreeze(bogus))).toBe("freeze_records_inconsistent");
  });
});

describe("oneOf", () => {
  it.each([
    ["FROZEN", "ok"],
    ["BOGUS", "freeze_records_inconsistent"],
    ["frozen", "freeze_records_inconsistent"],
    [null, "freeze_records_inconsistent"],
  ])("%s", (value, expected) => {
    expect(codeOf(() => oneOf(value, TRANSACTION_STATUSES, "status"))).toBe(expected);
  });
});
