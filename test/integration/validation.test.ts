import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError } from "../support/client.js";
import { DAY, ts, uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

let s: TestServer;
let customerId: string;
beforeAll(async () => {
  s = await startTestServer();
  customerId = uid("cust");
  await s.client.call("deposit", { customerId, amount: 1000n });
});
afterAll(async () => {
  await s?.stop();
});

const long = (n: number) => "a".repeat(n);
const INT64_MAX = 2n ** 63n - 1n;

describe("malformed input returns a structured error, never a crash", () => {
  const deposit = (extra: Record<string, unknown>) => s.client.call("deposit", { customerId, amount: 1n, ...extra });
  const deduct = (extra: Record<string, unknown>) =>
    s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 1n, ...extra });

  it.each([
    ["empty customer_id", { customerId: "" }, "customer_id_required", "customer_id"],
    ["customer_id with a space", { customerId: "a b" }, "invalid_argument", "customer_id"],
    ["customer_id of 129 characters", { customerId: long(129) }, "invalid_argument", "customer_id"],
    ["zero amount", { amount: 0n }, "amount_must_be_positive", "amount"],
    ["negative amount", { amount: -5n }, "amount_must_be_positive", "amount"],
    ["absurd amount", { amount: INT64_MAX }, "invalid_argument", "amount"],
    ["upper-case credit type", { creditType: "Paid" }, "invalid_credit_types", "credit_type"],
    ["credit type of 65 characters", { creditType: long(65) }, "invalid_credit_types", "credit_type"],
    ["source with a slash", { source: "a/b" }, "invalid_argument", "source"],
    ["idempotency key with unicode", { idempotencyKey: "clé" }, "invalid_argument", "idempotency_key"],
    ["description of 1025 characters", { description: long(1025) }, "invalid_argument", "description"],
    ["name of 256 characters", { name: long(256) }, "invalid_argument", "name"],
    [
      "33 metadata keys",
      { metadata: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"])) },
      "invalid_argument",
      "metadata",
    ],
    ["a metadata value of 1025 characters", { metadata: { k: long(1025) } }, "invalid_argument", "metadata"],
    ["starts_at in year 10000", { startsAt: { seconds: 253_402_300_800n, nanos: 0 } }, "invalid_starts_at", "starts_at"],
    ["starts_at with negative nanos", { startsAt: { seconds: 0n, nanos: -1 } }, "invalid_starts_at", "starts_at"],
    ["expires_at before year 1", { expiresAt: { seconds: -62_135_596_801n, nanos: 0 } }, "invalid_expires_at", "expires_at"],
    ["expires_at with 10^9 nanos", { expiresAt: { seconds: 0n, nanos: 1_000_000_000 } }, "invalid_expires_at", "expires_at"],
  ])("Deposit with %s", async (_name, extra, code, field) => {
    const info = await expectError(deposit(extra), code as never, undefined, { messageFree: true });
    expect(info.field).toBe(field);
  });

  it("Deposit with expires_at in the past, or not after starts_at", async () => {
    const now = s.clock.now();
    await expectError(deposit({ expiresAt: ts(now - 1) }), "invalid_expires_at", "expires_at must be in the future.");
    await expectError(deposit({ expiresAt: ts(now) }), "invalid_expires_at", "expires_at must be in the future.");
    await expectError(
      deposit({ startsAt: ts(now + 2 * DAY), expiresAt: ts(now + DAY) }),
      "invalid_datetime_range",
      "expires_at must be after starts_at.",
    );
  });

  it.each([
    ["empty transaction_id", { transactionId: "" }, "transaction_id_required"],
    ["transaction_id with a newline", { transactionId: "a\nb" }, "invalid_argument"],
    ["an invalid credit type in the filter", { creditTypes: ["ok", "NOT OK"] }, "invalid_credit_types"],
    ["33 credit types", { creditTypes: Array.from({ length: 33 }, (_, i) => `t${i}`) }, "invalid_credit_types"],
    ["an unknown business_type", { businessType: 99 }, "invalid_argument"],
    ["an empty customer_id", { customerId: "" }, "customer_id_required"],
  ])("Deduct with %s", async (_name, extra, code) => {
    await expectError(deduct(extra), code as never, undefined, { messageFree: true });
  });

  it.each([
    ["both auto-settlements", { unfreezeAfterSeconds: 10n, consumeAfterSeconds: 10n }, "invalid_auto_settlement"],
    ["unfreeze_after_seconds 0", { unfreezeAfterSeconds: 0n }, "invalid_auto_settlement_ttl"],
    ["unfreeze_after_seconds above 30 days", { unfreezeAfterSeconds: 2_592_001n }, "invalid_auto_settlement_ttl"],
    ["consume_after_seconds above 7 days", { consumeAfterSeconds: 604_801n }, "invalid_auto_settlement_ttl"],
    ["negative consume_after_seconds", { consumeAfterSeconds: -1n }, "invalid_auto_settlement_ttl"],
  ])("Freeze with %s", async (_name, extra, code) => {
    await expectError(s.client.call("freeze", { customerId, transactionId: uid("tx"), amount: 1n, ...extra }), code as never, undefined, {
      messageFree: true,
    });
  });

  it("Consume and Unfreeze without a transaction_id, or with a negative actual amount", async () => {
    await expectError(s.client.call("consume", { transactionId: "" }), "transaction_id_required", "transaction_id is required.");
    await expectError(s.client.call("unfreeze", { transactionId: "" }), "transaction_id_required", "transaction_id is required.");
    await expectError(s.client.call("consume", { transactionId: "t", actualAmount: -1n }), "actual_amount_must_be_non_negative");
  });

  it("GetCustomer and GetTransaction of unknown ids", async () => {
    await expectError(s.client.call("getCustomer", { customerId: uid("ghost") }), "customer_not_found");
    await expectError(s.client.call("getTransaction", { transactionId: uid("ghost") }), "transaction_not_found");
    await expectError(s.client.call("getCustomer", { customerId: "" }), "customer_id_required");
  });

  it("left the balance untouched", async () => {
    const c = await s.client.call("getCustomer", { customerId });
    expect(c.balance).toEqual({ total: 1000n, used: 0n, frozen: 0n, available: 1000n });
  });
});
