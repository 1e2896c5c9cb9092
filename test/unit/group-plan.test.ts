import { describe, expect, it } from "vitest";
import type { Hold } from "../../src/domain/hold.js";
import { type GroupState, type GroupWrite, planGroup } from "../../src/domain/plans/group-plan.js";
import { account } from "../support/accounts.js";

// Group commit's in-memory planning: each write sees what the earlier ones of the group did.

const NOW = 1_800_000_000_000;
const freeze = (transactionId: string, amount: bigint): GroupWrite => ({
  kind: "spend",
  spendKind: "FREEZE",
  request: {
    projectId: 1n,
    apiKeyId: null,
    customerId: "c1",
    transactionId,
    amount,
    creditTypes: [],
    businessType: 0,
    description: "",
    metadata: {},
    autoSettlement: null,
  },
});
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
const state: GroupState = {
  customerPk: 7n,
  before: { total: 100n, used: 0n, frozen: 40n, available: 60n },
  spendable: [account(1n, { frozen: 40n })],
  complete: true,
  outcomes: new Map(),
  holds: new Map([
    [
      "old",
      {
        hold,
        elsewhere: false,
        parts: [{ accountId: 1n, amount: 40n }],
        accounts: [account(1n, { frozen: 40n })],
        expiryRecorded: new Set(),
      },
    ],
  ]),
};
const balanceOf = (p: ReturnType<typeof planGroup>, i: number) => {
  const entry = p?.[i];
  if (!entry || entry.kind === "refused" || entry.planned.kind !== "apply") return entry?.kind === "refused" ? entry.error.code : "none";
  return (entry.planned.result as { balance: unknown }).balance;
};

describe("planGroup", () => {
  it("plans each write on the state the earlier ones leave, a refusal changing nothing", () => {
    const consume: GroupWrite = {
      kind: "consume",
      request: { projectId: 1n, apiKeyId: null, transactionId: "old", customerId: null, actualAmount: 10n, allowOverage: false },
    };
    const planned = planGroup(state, [freeze("a", 50n), freeze("b", 20n), consume, freeze("c", 20n)], NOW);
    expect([0, 1, 2, 3].map((i) => balanceOf(planned, i))).toEqual([
      { total: 100n, used: 0n, frozen: 90n, available: 10n },
      "insufficient_balance",
      { total: 100n, used: 10n, frozen: 50n, available: 40n },
      { total: 100n, used: 10n, frozen: 70n, available: 20n },
    ]);
  });

  it("gives up (null) when the loaded state cannot decide: more accounts than were read", () => {
    const truncated = { ...state, complete: false, holds: new Map() };
    expect(planGroup(truncated, [freeze("a", 61n)], NOW)).toBeNull();
    expect(planGroup(truncated, [freeze("a", 60n)], NOW)).not.toBeNull();
  });

  it("gives up on a hold of another customer", () => {
    const other = new Map([["old", { hold: null, elsewhere: true, parts: [], accounts: [], expiryRecorded: new Set<bigint>() }]]);
    const unfreeze: GroupWrite = { kind: "unfreeze", request: { projectId: 1n, apiKeyId: null, transactionId: "old", customerId: null } };
    expect(planGroup({ ...state, holds: other }, [unfreeze], NOW)).toBeNull();
  });
});
