import { describe, expect, it } from "vitest";
import { planClaim, planGrant, planRelease, planRevoke, poolView, type PoolSnapshot } from "../../src/domain/slots.js";
import { SLOT_CAPACITY_MAX } from "../../src/domain/limits.js";
import { codeOf } from "../support/code-of.js";

const pool = (id: bigint, over: Partial<PoolSnapshot> = {}): PoolSnapshot => ({
  id,
  wallet: "ip",
  source: "default",
  capacity: 10n,
  inUse: 0n,
  status: "ACTIVE",
  createdAtMs: 1000,
  ...over,
});

describe("grant and revoke", () => {
  it("grant adds capacity, up to the maximum", () => {
    expect(planGrant(pool(1n), 5n).capacity).toBe(15n);
    expect(planGrant(pool(1n, { capacity: 0n }), SLOT_CAPACITY_MAX).capacity).toBe(SLOT_CAPACITY_MAX);
    expect(codeOf(() => planGrant(pool(1n), SLOT_CAPACITY_MAX))).toBe("invalid_argument");
  });

  it.each([
    ["to exactly in_use", 10n, 4n, 6n, "ok"],
    ["to zero", 10n, 0n, 10n, "ok"],
    ["below in_use", 10n, 4n, 7n, "slot_capacity_below_in_use"],
    ["below zero", 3n, 0n, 4n, "slot_capacity_below_in_use"],
  ])("revoke %s", (_name, capacity, inUse, amount, code) => {
    expect(codeOf(() => planRevoke(pool(1n, { capacity, inUse }), amount, "ip"))).toBe(code);
  });

  it("revoke of a missing pool is slot_pool_not_found", () => {
    expect(codeOf(() => planRevoke(null, 1n, "ip"))).toBe("slot_pool_not_found");
  });
});

describe("claim", () => {
  const other = pool(2n, { source: "promo", createdAtMs: 500, capacity: 5n });
  const older = pool(3n, { source: "addon", createdAtMs: 100, capacity: 5n });
  const base = pool(4n, { createdAtMs: 2000, capacity: 3n });

  it("takes from the default pool first, then the oldest", () => {
    expect(planClaim([other, older, base], 2n, "ip").id).toBe(4n);
    expect(planClaim([other, older, base], 4n, "ip").id).toBe(3n);
    expect(planClaim([other, older, { ...base, inUse: 3n }], 1n, "ip").id).toBe(3n);
  });

  it("ties on age are broken by id", () => {
    expect(planClaim([pool(9n, { source: "a" }), pool(8n, { source: "b" })], 1n, "ip").id).toBe(8n);
  });

  it("raises in_use of the chosen pool only", () => {
    const after = planClaim([base], 3n, "ip");
    expect(poolView(after)).toMatchObject({ capacity: 3n, inUse: 3n, available: 0n });
  });

  it.each([
    ["no pool", [], 1n, "slot_pool_not_found"],
    ["not enough in total", [pool(1n, { capacity: 2n }), pool(2n, { source: "x", capacity: 2n })], 5n, "slot_insufficient_capacity"],
    [
      "enough in total, in no single pool",
      [pool(1n, { capacity: 2n }), pool(2n, { source: "x", capacity: 2n })],
      3n,
      "slot_split_required",
    ],
    [
      "only a suspended pool has room",
      [pool(1n, { status: "SUSPENDED" }), pool(2n, { source: "x", capacity: 0n })],
      1n,
      "slot_insufficient_capacity",
    ],
    ["exactly the room left", [pool(1n, { capacity: 2n, inUse: 1n })], 1n, "ok"],
    ["one more than the room left", [pool(1n, { capacity: 2n, inUse: 1n })], 2n, "slot_insufficient_capacity"],
  ] as const)("%s → %s", (_name, pools, amount, code) => {
    expect(codeOf(() => planClaim(pools, amount, "ip"))).toBe(code);
  });

  it("split_required names what is available in total and in the largest pool", () => {
    let thrown: unknown = null;
    try {
      planClaim([pool(1n, { capacity: 2n }), pool(2n, { source: "x", capacity: 3n, inUse: 1n })], 3n, "ip");
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: "slot_split_required", facts: { requested: 3n, available: 4n, largest_available: 2n } });
  });
});

describe("release", () => {
  it("gives the holding back to its pool", () => {
    expect(planRelease(pool(1n, { inUse: 4n }), { id: 7n, poolId: 1n, amount: 3n, released: false }).inUse).toBe(1n);
  });

  it("asserts the holding is held and in that pool", () => {
    expect(codeOf(() => planRelease(pool(1n, { inUse: 4n }), { id: 7n, poolId: 2n, amount: 3n, released: false }))).toMatch(/not in pool/);
    expect(codeOf(() => planRelease(pool(1n, { inUse: 4n }), { id: 7n, poolId: 1n, amount: 3n, released: true }))).toMatch(
      /already released/,
    );
    expect(codeOf(() => planRelease(pool(1n, { inUse: 2n }), { id: 7n, poolId: 1n, amount: 3n, released: false }))).toMatch(/in_use/);
  });
});
