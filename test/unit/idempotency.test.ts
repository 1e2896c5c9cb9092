import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BillingError } from "../../src/errors/billing-error.js";
import { fingerprint } from "../../src/domain/fingerprint.js";
import { consumeEnvelope, envelopeOf, legacyFingerprint, outcomeToReplay, unfreezeEnvelope } from "../../src/domain/idempotency.js";
import { codeOf } from "../support/code-of.js";

// A request as compared: its version 2 fingerprint, and the canonical request whose version 1
// fingerprint is computed only when a version 1 outcome is compared with it.
const canonical1 = { op: "DEDUCT", amount: 5n, description: "a" };
const canonical2 = { op: "DEDUCT", amount: 6n, description: "a" };
const stored = { customerId: "c1", requestFingerprint: "v2:f1", response: "{}" };
const storedV1 = { customerId: "c1", requestFingerprint: fingerprint(canonical1), response: "{}" };
const request = (customerId: string | null, requestFingerprint: string, canonicalRequest: typeof canonical1) => ({
  customerId,
  requestFingerprint,
  canonicalRequest,
});

describe("outcomeToReplay: the one replay rule of every keyed write", () => {
  it.each([
    ["nothing stored", null, request("c1", "v2:f1", canonical1), "fresh"],
    ["same customer, same request", stored, request("c1", "v2:f1", canonical1), "replay"],
    ["no customer named (settlements), same request", stored, request(null, "v2:f1", canonical1), "replay"],
    ["another customer", stored, request("c2", "v2:f1", canonical1), "transaction_conflict"],
    ["another customer and another request", stored, request("c2", "v2:f2", canonical2), "transaction_conflict"],
    ["same customer, other parameters", stored, request("c1", "v2:f2", canonical1), "idempotency_conflict"],
    ["version 1 stored, same whole request", storedV1, request("c1", "v2:f9", canonical1), "replay"],
    ["version 1 stored, other whole request", storedV1, request("c1", "v2:f1", canonical2), "idempotency_conflict"],
  ] as const)("%s → %s", (_name, found, request, expected) => {
    let replayed: unknown;
    expect(codeOf(() => (replayed = outcomeToReplay(found, request)))).toBe(
      expected === "fresh" || expected === "replay" ? "ok" : expected,
    );
    if (expected === "fresh") expect(replayed).toBeNull();
    if (expected === "replay") expect(replayed).toBe(found);
  });

  it("lets an operation refuse a mismatch with its own code", () => {
    const refuse = (): never => {
      throw new BillingError("freeze_records_already_consumed");
    };
    expect(codeOf(() => outcomeToReplay(stored, request(null, "v2:f2", canonical1), refuse))).toBe("freeze_records_already_consumed");
  });

  it("never matches a version 1 outcome without the canonical request", () => {
    expect(codeOf(() => outcomeToReplay(storedV1, { customerId: "c1", requestFingerprint: "v2:f1" }))).toBe("idempotency_conflict");
  });
});

describe("envelopes", () => {
  it("fingerprint the canonical request, whatever order its fields came in", () => {
    const a = envelopeOf("SPEND", "tx", { op: "FREEZE", amount: 5n, customerId: "c" });
    const b = envelopeOf("SPEND", "tx", { customerId: "c", op: "FREEZE", amount: 5n });
    expect(a).toEqual(b);
    expect(a.requestFingerprint).toMatch(/^v2:[0-9a-f]{61}$/);
    expect(legacyFingerprint(a.canonicalRequest)).toMatch(/^[0-9a-f]{64}$/);
    expect(envelopeOf("SPEND", "tx", { op: "DEDUCT", amount: 5n, customerId: "c" }).requestFingerprint).not.toBe(a.requestFingerprint);
  });

  it("tell settlements apart by their actual amount, and Consume from Unfreeze", () => {
    expect(consumeEnvelope("tx", 5n)).toEqual(consumeEnvelope("tx", 5n));
    expect(consumeEnvelope("tx", 5n).requestFingerprint).not.toBe(consumeEnvelope("tx", 6n).requestFingerprint);
    expect(consumeEnvelope("tx", 0n).requestFingerprint).not.toBe(unfreezeEnvelope("tx").requestFingerprint);
    expect(unfreezeEnvelope("tx").scope).toBe("SETTLE");
  });

  it("hash what migration 0008 hashes in SQL for settlements made before the envelope (version 1)", () => {
    const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
    expect(legacyFingerprint(consumeEnvelope("tx-1", 20n).canonicalRequest)).toBe(
      sha256('{"actualAmount":"20","op":"CONSUME","transactionId":"tx-1"}'),
    );
    expect(legacyFingerprint(unfreezeEnvelope("tx-1").canonicalRequest)).toBe(sha256('{"op":"UNFREEZE","transactionId":"tx-1"}'));
  });

  const deduct = { op: "DEDUCT", customerId: "c", transactionId: "tx", amount: 5n, creditTypes: ["paid"], autoSettlement: null };
  const labels = { description: "API call", businessType: 1, metadata: { plan: "pro" }, name: "Ada", email: "ada@example.com" };

  it("leave the labels (description, business type, metadata, name, email) out of version 2, not out of version 1", () => {
    const bare = envelopeOf("SPEND", "tx", deduct);
    const labelled = envelopeOf("SPEND", "tx", { ...deduct, ...labels });
    expect(labelled.requestFingerprint).toBe(bare.requestFingerprint);
    expect(legacyFingerprint(labelled.canonicalRequest)).not.toBe(legacyFingerprint(bare.canonicalRequest));
    for (const [field, value] of Object.entries(labels)) {
      expect(envelopeOf("SPEND", "tx", { ...deduct, [field]: value }).requestFingerprint).toBe(bare.requestFingerprint);
    }
  });

  it.each([
    ["customer", { customerId: "d" }],
    ["amount", { amount: 6n }],
    ["credit types", { creditTypes: ["free"] }],
    ["hold deadline", { autoSettlement: { action: "UNFREEZE", seconds: 60n } }],
    ["source", { source: "promo" }],
    ["expiry", { expiresAtMs: 1 }],
  ])("keep the money field %s in version 2", (_name, change) => {
    expect(envelopeOf("SPEND", "tx", { ...deduct, ...change }).requestFingerprint).not.toBe(
      envelopeOf("SPEND", "tx", deduct).requestFingerprint,
    );
  });
});
