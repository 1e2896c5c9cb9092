import { describe, expect, it } from "vitest";
import { fingerprint } from "../../src/domain/fingerprint.js";
import { legacyFingerprint, type StoredOutcome } from "../../src/domain/idempotency.js";
import { SLOT_CAPACITY_MAX } from "../../src/domain/limits.js";
import type { WriteOutcome } from "../../src/domain/plans/outcome.js";
import {
  type CapacityDirection,
  type CapacityInput,
  type CapacityState,
  capacityEnvelope,
  type HoldingState,
  PENDING_HOLDING_ID,
  planCapacity,
  planClaimWrite,
  planReleaseWrite,
} from "../../src/domain/plans/slot-plans.js";
import { type PoolSnapshot, poolView } from "../../src/domain/slots.js";

const pool = (id: bigint, over: Partial<PoolSnapshot> = {}): PoolSnapshot => ({
  id,
  wallet: "ip",
  source: "default",
  capacity: 10n,
  inUse: 0n,
  status: "ACTIVE",
  createdAtMs: 1_000,
  ...over,
});

const grant: CapacityInput = {
  projectId: 1n,
  customerId: "c1",
  wallet: "ip",
  source: "default",
  amount: 4n,
  idempotencyKey: "k1",
  description: null,
};

/** What a plan refused with, "apply", "replay" or "answer" otherwise. */
function kindOf(outcome: WriteOutcome<unknown, unknown>): string {
  return outcome.kind === "refused" ? outcome.error.code : outcome.kind;
}

describe("capacityEnvelope", () => {
  it("keeps the fingerprint slot_keys stored (the whole request but project, key and caller) as its version 1, under scope SLOT", () => {
    const sent = { ...grant, apiKeyId: 9n };
    const old = fingerprint({ op: "GRANT_CAPACITY", ...sent, projectId: undefined, apiKeyId: undefined, idempotencyKey: undefined });
    const envelope = capacityEnvelope("GRANT_CAPACITY", grant);
    expect(envelope).toMatchObject({ scope: "SLOT", key: "k1", requestFingerprint: expect.stringMatching(/^v2:[0-9a-f]{61}$/) });
    expect(envelope && legacyFingerprint(envelope.canonicalRequest)).toBe(old);
    const revoke = capacityEnvelope("REVOKE_CAPACITY", grant);
    expect(revoke && legacyFingerprint(revoke.canonicalRequest)).not.toBe(old);
    // The description labels the grant: not part of version 2.
    expect(capacityEnvelope("GRANT_CAPACITY", { ...grant, description: "other" })?.requestFingerprint).toBe(
      capacityEnvelope("GRANT_CAPACITY", grant)?.requestFingerprint,
    );
    expect(capacityEnvelope("GRANT_CAPACITY", { ...grant, idempotencyKey: null })).toBeNull();
  });
});

describe("planCapacity", () => {
  /** As operations/slots/capacity.ts calls it: with the envelope it made once for the call. */
  const plan = (direction: CapacityDirection, s: CapacityState, input: CapacityInput) =>
    planCapacity(direction, s, input, capacityEnvelope(direction, input));
  const state = (over: Partial<CapacityState> = {}): CapacityState => ({ customerPk: 7n, pool: pool(3n), stored: null, ...over });
  const storedFor = (direction: "GRANT_CAPACITY" | "REVOKE_CAPACITY", customerId = "c1"): StoredOutcome => ({
    customerId,
    requestFingerprint: capacityEnvelope(direction, grant)?.requestFingerprint ?? "",
    response: "{}",
  });

  it("grows or shrinks the locked pool and answers it, with the envelope to store", () => {
    const granted = plan("GRANT_CAPACITY", state(), grant);
    expect(granted).toEqual({
      kind: "apply",
      changes: {
        direction: "GRANT_CAPACITY",
        customerPk: 7n,
        before: pool(3n),
        after: pool(3n, { capacity: 14n }),
        envelope: capacityEnvelope("GRANT_CAPACITY", grant),
      },
      result: { pool: poolView(pool(3n, { capacity: 14n })), isIdempotentReplay: false },
    });
    const revoked = plan("REVOKE_CAPACITY", state({ pool: pool(3n, { inUse: 6n }) }), { ...grant, idempotencyKey: null });
    expect(revoked.kind === "apply" && [revoked.changes.after.capacity, revoked.changes.envelope]).toEqual([6n, null]);
  });

  it("replays the same request's stored outcome, read under the lock, before anything else is checked", () => {
    expect(plan("GRANT_CAPACITY", state({ stored: storedFor("GRANT_CAPACITY") }), grant)).toEqual({
      kind: "replay",
      stored: storedFor("GRANT_CAPACITY"),
    });
    const gone = { customerPk: null, pool: null, stored: storedFor("REVOKE_CAPACITY") };
    expect(kindOf(plan("REVOKE_CAPACITY", gone, grant))).toBe("replay");
  });

  it.each([
    ["another request under the key", "REVOKE_CAPACITY", state({ stored: storedFor("GRANT_CAPACITY") }), "idempotency_conflict"],
    ["the key of another customer", "GRANT_CAPACITY", state({ stored: storedFor("GRANT_CAPACITY", "c2") }), "transaction_conflict"],
    ["a revoke of no customer", "REVOKE_CAPACITY", state({ customerPk: null, pool: null }), "slot_pool_not_found"],
    ["a revoke of no pool", "REVOKE_CAPACITY", state({ pool: null }), "slot_pool_not_found"],
    ["a revoke below in_use", "REVOKE_CAPACITY", state({ pool: pool(3n, { inUse: 7n }) }), "slot_capacity_below_in_use"],
    ["a grant beyond the maximum", "GRANT_CAPACITY", state({ pool: pool(3n, { capacity: SLOT_CAPACITY_MAX - 3n }) }), "invalid_argument"],
  ] as const)("refuses %s as a value", (_what, direction, s, code) => {
    expect(kindOf(plan(direction, s, grant))).toBe(code);
  });

  it("grants exactly up to the maximum", () => {
    const outcome = plan("GRANT_CAPACITY", state({ pool: pool(3n, { capacity: SLOT_CAPACITY_MAX - 4n }) }), grant);
    expect(outcome.kind === "apply" && outcome.changes.after.capacity).toBe(SLOT_CAPACITY_MAX);
  });

  it("throws (a bug, not a refusal) when a grant's prefetch did not create its pool", () => {
    expect(() => plan("GRANT_CAPACITY", state({ pool: null }), grant)).toThrow(/not created by its prefetch/);
  });
});

describe("planClaimWrite and planReleaseWrite", () => {
  const claim = { projectId: 1n, customerId: "c1", wallet: "ip", resourceId: "r1", source: null, amount: 3n, description: null };
  const holding = (over = {}) => ({ id: 11n, poolId: 3n, amount: 3n, released: false, ...over });
  const state = (over: Partial<HoldingState> = {}): HoldingState => ({
    customerPk: 7n,
    pools: [pool(3n, { inUse: 3n }), pool(4n, { source: "promo" })],
    holding: null,
    ...over,
  });

  it("claims from the first pool with room; the holding's id is the database's", () => {
    expect(planClaimWrite(state(), claim)).toEqual({
      kind: "apply",
      changes: { customerPk: 7n, before: pool(3n, { inUse: 3n }), after: pool(3n, { inUse: 6n }) },
      result: { pool: poolView(pool(3n, { inUse: 6n })), holdingId: PENDING_HOLDING_ID, isIdempotentReplay: false },
    });
    const promo = planClaimWrite(state(), { ...claim, source: "promo" });
    expect(promo.kind === "apply" && promo.changes.after).toEqual(pool(4n, { source: "promo", inUse: 3n }));
  });

  it("answers a resource's live holding as a replay, and claims again once it was released", () => {
    expect(planClaimWrite(state({ holding: holding() }), claim)).toEqual({
      kind: "answer",
      result: { pool: poolView(pool(3n, { inUse: 3n })), holdingId: 11n, isIdempotentReplay: true },
    });
    expect(kindOf(planClaimWrite(state({ holding: holding({ released: true }) }), claim))).toBe("apply");
  });

  it.each([
    ["no customer", state({ customerPk: null, pools: [] }), claim, "slot_pool_not_found"],
    ["no pool of the source", state(), { ...claim, source: "other" }, "slot_pool_not_found"],
    ["too little room in all", state(), { ...claim, amount: 18n }, "slot_insufficient_capacity"],
    ["room only split over pools", state(), { ...claim, amount: 11n }, "slot_split_required"],
  ] as const)("refuses a claim with %s as a value", (_what, s, input, code) => {
    expect(kindOf(planClaimWrite(s, input))).toBe(code);
  });

  it("releases a held holding into its pool; a released one is answered as a replay; none is slot_holding_not_found", () => {
    expect(planReleaseWrite(state({ holding: holding() }), claim)).toEqual({
      kind: "apply",
      changes: { customerPk: 7n, holding: holding(), before: pool(3n, { inUse: 3n }), after: pool(3n) },
      result: { pool: poolView(pool(3n)), holdingId: 11n, isIdempotentReplay: false },
    });
    expect(planReleaseWrite(state({ holding: holding({ released: true }) }), claim)).toEqual({
      kind: "answer",
      result: { pool: poolView(pool(3n, { inUse: 3n })), holdingId: 11n, isIdempotentReplay: true },
    });
    expect(kindOf(planReleaseWrite(state(), claim))).toBe("slot_holding_not_found");
    expect(kindOf(planReleaseWrite(state({ customerPk: null, holding: holding() }), claim))).toBe("slot_holding_not_found");
  });

  it("throws (a bug) for a holding whose pool is not in its wallet", () => {
    expect(() => planReleaseWrite(state({ holding: holding({ poolId: 99n }) }), claim)).toThrow(/not in its wallet/);
  });
});
