import { describe, expect, it } from "vitest";
import { AUDIT_FIELDS, inputOf } from "../../src/domain/command.js";
import { balanceOf } from "../../src/domain/account-status.js";
import { type IdempotencyEnvelope, legacyFingerprint } from "../../src/domain/idempotency.js";
import type { RefundRequest } from "../../src/domain/plans/refund-plan.js";
import { capacityEnvelope, type CapacityInput } from "../../src/domain/plans/slot-plans.js";
import { planSpend, type SpendState } from "../../src/domain/plans/spend-plan.js";
import type { VoidRequest } from "../../src/domain/plans/void-plan.js";
import { consumeWrite, depositWrite, refundWrite, spendWrite, unfreezeWrite, voidWrite } from "../../src/domain/plans/write-list.js";
import type { DepositRequest, FreezeRequest, SettleRequest } from "../../src/domain/requests.js";
import { account } from "../support/accounts.js";

// Stored fingerprints must keep matching: these are the fingerprints (version 2, and the version 1
// of outcomes stored before it) the envelope builders computed before the command builder
// replaced them, for one request of each keyed write, audit fields and labels included.

const audit = { projectId: 7n, apiKeyId: 42n };
const otherAudit = { projectId: 8n, apiKeyId: null };
const MANUAL = { automatic: false };

const deposit: DepositRequest = {
  ...audit,
  customerId: "cust-1",
  amount: 500n,
  idempotencyKey: "dep-1",
  creditType: "paid",
  source: "stripe",
  startsAtMs: null,
  expiresAtMs: 4_102_444_800_000,
  name: "Ada",
  email: "ada@example.com",
  description: "top-up",
  metadata: { plan: "pro" },
};
const spend = {
  ...audit,
  customerId: "cust-1",
  transactionId: "tx-1",
  amount: 30n,
  creditTypes: ["paid", "free"],
  businessType: 2,
  description: "API call",
  metadata: { job: "9" },
  requestId: "req-abc",
};
const deduct: FreezeRequest = { ...spend, autoSettlement: null };
const freeze: FreezeRequest = { ...spend, autoSettlement: { action: "UNFREEZE", afterSeconds: 60n } };
const settle: SettleRequest = { ...audit, transactionId: "tx-1", customerId: "cust-1" };
const refund: RefundRequest = {
  ...audit,
  refundId: "rf-1",
  transactionId: "tx-1",
  customerId: "cust-1",
  amount: 10n,
  reason: "duplicate",
  metadata: { t: "1" },
};
const voidRequest: VoidRequest = { ...audit, customerId: "cust-1", recordId: 123n, voidId: "void-1", amount: 5n };
const grant: CapacityInput & typeof audit = {
  ...audit,
  customerId: "cust-1",
  wallet: "seat",
  source: "default",
  amount: 3n,
  idempotencyKey: "grant-1",
  description: "plan",
};

const fixed = (e: IdempotencyEnvelope | null) => e && [e.scope, e.key, e.requestFingerprint, legacyFingerprint(e.canonicalRequest)];

describe("the envelope of each keyed write, built once with the write", () => {
  it.each([
    [
      "Deposit",
      depositWrite(deposit).envelope,
      "DEPOSIT",
      "dep-1",
      "v2:18c49bf177c7d94b3a08797b16e60384cacd17f942b54b6729a661294f3c3",
      "bf7b1218edce0817b19f34eb65ebe42691105b9b3e7813695f09de89e8c36e38",
    ],
    [
      "Deduct",
      spendWrite("DEDUCT", deduct).envelope,
      "SPEND",
      "tx-1",
      "v2:d6348d04e70264edefe5e33791c08a9d53635aa4f8c69d53a47e6a6b0f7f8",
      "7c16ca3db748b59389ba93b569d85483afe8552db36858a91553408690d9db0e",
    ],
    [
      "Freeze",
      spendWrite("FREEZE", freeze).envelope,
      "SPEND",
      "tx-1",
      "v2:3fd191a15d754609e057b2af60badf45334ef4c6c2df709f980da51fc8311",
      "d8bda668fb75c489d7bab6597d7bc88fadd980c6e8fe9c55ba08338d13c89fda",
    ],
    [
      "Consume of an amount",
      consumeWrite({ ...settle, actualAmount: 20n, allowOverage: true }, MANUAL).envelope(99n),
      "SETTLE",
      "tx-1",
      "v2:805e6ba2f7d1bf573d273bf89824a25a2657b8cae7c8194670326e1547c81",
      "805e6ba2f7d1bf573d273bf89824a25a2657b8cae7c8194670326e1547c8115e",
    ],
    [
      "Consume of the whole hold",
      consumeWrite({ ...settle, actualAmount: null, allowOverage: false }, MANUAL).envelope(20n),
      "SETTLE",
      "tx-1",
      "v2:805e6ba2f7d1bf573d273bf89824a25a2657b8cae7c8194670326e1547c81",
      "805e6ba2f7d1bf573d273bf89824a25a2657b8cae7c8194670326e1547c8115e",
    ],
    [
      "Unfreeze",
      unfreezeWrite(settle, MANUAL).envelope,
      "SETTLE",
      "tx-1",
      "v2:34d5090b36b433ea3634961c22b89a862e07eade709e324eba9ad7dbf4ebf",
      "34d5090b36b433ea3634961c22b89a862e07eade709e324eba9ad7dbf4ebf337",
    ],
    [
      "Refund",
      refundWrite(refund).envelope,
      "REFUND",
      "rf-1",
      "v2:b50bc2c64488af7fad7903b9ebcedd243fe394678187bbe7a18a3b42d4f66",
      "f613d94f3ec2631e5f9f4b9119845831fd315e9a456cba2ce0816af5cc4687ff",
    ],
    [
      "Refund of all that is refundable, no customer named",
      refundWrite({ ...refund, customerId: null, amount: null }).envelope,
      "REFUND",
      "rf-1",
      "v2:b5fdd0183f5cd984f0fe6b8d048f63144e7814a815a2c0abb9ae0547b7114",
      "a10f3d21a77350eb5f196435c2ea12cc382dde1a68caef65975bf5b6017ffd17",
    ],
    [
      "VoidDeposit",
      voidWrite(voidRequest).envelope,
      "VOID",
      "void-1",
      "v2:ef9e538222fa7005b788b93cc5da47c20b7c7cb8ec9bccd9d191e12f4ffe1",
      "ef9e538222fa7005b788b93cc5da47c20b7c7cb8ec9bccd9d191e12f4ffe1d82",
    ],
    [
      "VoidDeposit of all that is voidable",
      voidWrite({ ...voidRequest, amount: null }).envelope,
      "VOID",
      "void-1",
      "v2:8b91808e02f49e88769e67876d42e83903267beeb83e348d1f7667bcca929",
      "8b91808e02f49e88769e67876d42e83903267beeb83e348d1f7667bcca9292b7",
    ],
    [
      "GrantCapacity",
      capacityEnvelope("GRANT_CAPACITY", grant),
      "SLOT",
      "grant-1",
      "v2:0a4d342f53c382dd5ceeb95ff047f86d7f2261a8085bbcb8eb40bb6772c21",
      "db46a8d6d68f2bb8b55adf6a914a5a6a2b53c4ee77fe04f7458e1eef8638733a",
    ],
    [
      "RevokeCapacity",
      capacityEnvelope("REVOKE_CAPACITY", { ...grant, description: null }),
      "SLOT",
      "grant-1",
      "v2:c14487113a7a8b647357e293a638a0d25a05e1381be37e586b29f583e0c75",
      "33fff73b830953e2c1d89c9a3268aeacd613023785731c06af694a9417f069d7",
    ],
  ])("%s keeps its fingerprints", (_op, envelope, scope, key, v2, v1) => {
    expect(fixed(envelope)).toEqual([scope, key, v2, v1]);
  });

  it("leaves who sent a write and in which call out of it", () => {
    const { requestId: _, ...sentAgain } = { ...deduct, ...otherAudit };
    expect(spendWrite("DEDUCT", sentAgain).envelope).toEqual(spendWrite("DEDUCT", deduct).envelope);
    expect(depositWrite({ ...deposit, ...otherAudit }).envelope).toEqual(depositWrite(deposit).envelope);
    expect(refundWrite({ ...refund, ...otherAudit }).envelope).toEqual(refundWrite(refund).envelope);
    expect(voidWrite({ ...voidRequest, ...otherAudit }).envelope).toEqual(voidWrite(voidRequest).envelope);
    expect(capacityEnvelope("GRANT_CAPACITY", { ...grant, ...otherAudit })).toEqual(capacityEnvelope("GRANT_CAPACITY", grant));
    expect(unfreezeWrite({ ...settle, ...otherAudit }, MANUAL).envelope).toEqual(unfreezeWrite(settle, MANUAL).envelope);
  });

  it("strips exactly the audit fields (and the key, when it is not part of the request)", () => {
    expect(AUDIT_FIELDS).toEqual(["projectId", "apiKeyId", "requestId"]);
    expect(inputOf({ projectId: 1n, apiKeyId: 2n, requestId: "r", amount: 3n, idempotencyKey: "k" }, "idempotencyKey")).toEqual({
      amount: 3n,
    });
    expect(depositWrite({ ...deposit, idempotencyKey: null }).envelope).toBeNull();
  });

  it("fingerprints a Consume of the whole hold once per hold amount", () => {
    const envelope = consumeWrite({ ...settle, actualAmount: null, allowOverage: false }, MANUAL).envelope;
    expect(envelope(20n)).toBe(envelope(20n));
    expect(envelope(21n).requestFingerprint).not.toBe(envelope(20n).requestFingerprint);
    const amount = consumeWrite({ ...settle, actualAmount: 20n, allowOverage: false }, MANUAL).envelope;
    expect(amount(1n)).toBe(amount(2n));
  });

  it("is what the plan stores the outcome under, however often the write is planned", () => {
    const write = spendWrite("DEDUCT", deduct);
    const paid = account(1n, { creditType: "paid" });
    const state: SpendState = { stored: null, customerPk: 1n, accounts: [paid], complete: true, before: balanceOf([paid], 0) };
    const plans = [planSpend("DEDUCT", state, write, 0), planSpend("DEDUCT", state, write, 0)];
    expect(plans.map((p) => p.kind === "apply" && p.changes.envelope)).toEqual([write.envelope, write.envelope]);
    expect(plans.every((p) => p.kind === "apply" && p.changes.envelope === write.envelope)).toBe(true);
  });
});
