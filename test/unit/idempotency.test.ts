import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BillingError } from "../../src/errors/billing-error.js";
import { consumeEnvelope, envelopeOf, replayDecision, unfreezeEnvelope } from "../../src/domain/idempotency.js";
import { codeOf } from "../support/code-of.js";

const stored = { customerId: "c1", requestFingerprint: "f1", response: "{}" };

describe("replayDecision: the one replay rule of every keyed write", () => {
  it.each([
    ["nothing stored", null, { customerId: "c1", requestFingerprint: "f1" }, "fresh"],
    ["same customer, same request", stored, { customerId: "c1", requestFingerprint: "f1" }, "replay"],
    ["no customer named (settlements), same request", stored, { customerId: null, requestFingerprint: "f1" }, "replay"],
    ["another customer", stored, { customerId: "c2", requestFingerprint: "f1" }, "transaction_conflict"],
    ["another customer and another request", stored, { customerId: "c2", requestFingerprint: "f2" }, "transaction_conflict"],
    ["same customer, other parameters", stored, { customerId: "c1", requestFingerprint: "f2" }, "idempotency_conflict"],
  ] as const)("%s → %s", (_name, found, request, expected) => {
    let decision = "";
    expect(codeOf(() => (decision = replayDecision(found, request)))).toBe(expected === "fresh" || expected === "replay" ? "ok" : expected);
    if (expected === "fresh" || expected === "replay") expect(decision).toBe(expected);
  });

  it("lets an operation refuse a mismatch with its own code", () => {
    const refuse = (): never => {
      throw new BillingError("freeze_records_already_consumed");
    };
    expect(codeOf(() => replayDecision(stored, { customerId: null, requestFingerprint: "f2" }, refuse))).toBe(
      "freeze_records_already_consumed",
    );
  });
});

describe("envelopes", () => {
  it("fingerprint the canonical request, whatever order its fields came in", () => {
    const a = envelopeOf("SPEND", "tx", { op: "FREEZE", amount: 5n, customerId: "c" });
    const b = envelopeOf("SPEND", "tx", { customerId: "c", op: "FREEZE", amount: 5n });
    expect(a).toEqual(b);
    expect(a.requestFingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(envelopeOf("SPEND", "tx", { op: "DEDUCT", amount: 5n, customerId: "c" }).requestFingerprint).not.toBe(a.requestFingerprint);
  });

  it("tell settlements apart by their actual amount, and Consume from Unfreeze", () => {
    expect(consumeEnvelope("tx", 5n)).toEqual(consumeEnvelope("tx", 5n));
    expect(consumeEnvelope("tx", 5n).requestFingerprint).not.toBe(consumeEnvelope("tx", 6n).requestFingerprint);
    expect(consumeEnvelope("tx", 0n).requestFingerprint).not.toBe(unfreezeEnvelope("tx").requestFingerprint);
    expect(unfreezeEnvelope("tx").scope).toBe("SETTLE");
  });

  it("hash what migration 0008 hashes in SQL for settlements made before the envelope", () => {
    const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
    expect(consumeEnvelope("tx-1", 20n).requestFingerprint).toBe(sha256('{"actualAmount":"20","op":"CONSUME","transactionId":"tx-1"}'));
    expect(unfreezeEnvelope("tx-1").requestFingerprint).toBe(sha256('{"op":"UNFREEZE","transactionId":"tx-1"}'));
  });
});
