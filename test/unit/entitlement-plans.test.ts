import { describe, expect, it } from "vitest";
import type { EntitlementView } from "../../src/domain/entitlements.js";
import type { WriteOutcome } from "../../src/domain/plans/outcome.js";
import {
  type EntitlementState,
  PENDING_ENTITLEMENT_ID,
  planRemoveWrite,
  planSetWrite,
  type SetEntitlementInput,
} from "../../src/domain/plans/entitlement-plans.js";

const NOW = Date.UTC(2026, 0, 1);
const current: EntitlementView = {
  entitlementId: 5n,
  featureKey: "model",
  value: "gpt-5",
  validFromMs: null,
  validUntilMs: null,
  source: "plan",
  description: null,
  metadata: null,
};
const input: SetEntitlementInput = {
  projectId: 1n,
  customerId: "c1",
  featureKey: "model",
  value: "gpt-6",
  validFromMs: NOW + 1_000,
  validUntilMs: null,
  source: null,
  description: "upgrade",
  metadata: { tier: "pro" },
};
const fields = {
  featureKey: "model",
  value: "gpt-6",
  validFromMs: NOW + 1_000,
  validUntilMs: null,
  source: null,
  description: "upgrade",
  metadata: { tier: "pro" },
};
const state = (over: Partial<EntitlementState> = {}): EntitlementState => ({ customerPk: 7n, current: null, ...over });
const kindOf = (outcome: WriteOutcome<unknown, unknown>) => (outcome.kind === "refused" ? outcome.error.code : outcome.kind);

describe("planSetWrite", () => {
  it("creates the entitlement (its id is the database's) with only its stored fields, not yet active", () => {
    expect(planSetWrite(state(), { ...input, apiKeyId: 3n } as SetEntitlementInput, NOW)).toEqual({
      kind: "apply",
      changes: { customerPk: 7n, current: null, fields, oldValue: null },
      result: { entitlement: { ...fields, entitlementId: PENDING_ENTITLEMENT_ID, isActive: false }, isCreated: true, oldValue: null },
    });
  });

  it("replaces the current one under its id and answers its old value", () => {
    expect(planSetWrite(state({ current }), { ...input, validFromMs: NOW }, NOW)).toEqual({
      kind: "apply",
      changes: { customerPk: 7n, current, fields: { ...fields, validFromMs: NOW }, oldValue: "gpt-5" },
      result: { entitlement: { ...fields, validFromMs: NOW, entitlementId: 5n, isActive: true }, isCreated: false, oldValue: "gpt-5" },
    });
  });

  it.each([
    ["no customer", state({ customerPk: null }), input, "entitlement_customer_not_found"],
    ["an empty window", state(), { ...input, validUntilMs: NOW + 1_000 }, "entitlement_validation_error"],
    ["a window ending before it starts", state({ current }), { ...input, validUntilMs: NOW }, "entitlement_validation_error"],
  ] as const)("refuses %s as a value", (_what, s, request, code) => {
    expect(kindOf(planSetWrite(s, request, NOW))).toBe(code);
  });
});

describe("planRemoveWrite", () => {
  it("removes the current entitlement and answers its value; nothing (or no customer) answers removed false", () => {
    expect(planRemoveWrite(state({ current }))).toEqual({
      kind: "apply",
      changes: { customerPk: 7n, current },
      result: { removed: true, oldValue: "gpt-5" },
    });
    expect(planRemoveWrite(state())).toEqual({ kind: "answer", result: { removed: false, oldValue: null } });
    expect(planRemoveWrite(state({ customerPk: null, current: null }))).toEqual({
      kind: "answer",
      result: { removed: false, oldValue: null },
    });
  });
});
