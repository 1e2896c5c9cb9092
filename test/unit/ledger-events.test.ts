import { describe, expect, it } from "vitest";
import { ledgerEvent, ledgerEventPayload, ledgerEventType } from "../../src/domain/ledger-events.js";
import { type CreditWrite, consumeWrite, spendWrite, unfreezeWrite } from "../../src/domain/plans/write-list.js";
import type { FreezeRequest, SettleRequest } from "../../src/domain/requests.js";

const spend: FreezeRequest = {
  projectId: 1n,
  apiKeyId: null,
  customerId: "c",
  transactionId: "t",
  amount: 5n,
  creditTypes: [],
  businessType: 0,
  description: "",
  metadata: {},
  autoSettlement: null,
};
const settle: SettleRequest = { projectId: 1n, apiKeyId: null, transactionId: "t", customerId: null };

describe("ledgerEventType", () => {
  it.each([
    [spendWrite("DEDUCT", spend), "ledger.deduct"],
    [spendWrite("FREEZE", spend), "ledger.freeze"],
    [consumeWrite({ ...settle, actualAmount: null, allowOverage: false }, { automatic: false }), "ledger.consume"],
    [unfreezeWrite(settle, { automatic: true }), "ledger.unfreeze"],
    [{ kind: "expire", account: { projectId: 1n, customerPk: 1n, accountId: 1n } }, "ledger.expire"],
  ] satisfies [CreditWrite, string][])("%# → %s", (write, type) => {
    expect(ledgerEventType(write)).toBe(type);
  });
});

describe("ledgerEventPayload", () => {
  it("pairs each entry with its position and ends on the last balance", () => {
    const payload = ledgerEventPayload(
      [
        { operation: "CONSUME", accountId: 3n, amount: 40n, creditType: "paid", source: "s" },
        { operation: "UNFREEZE", accountId: 4n, amount: 10n, creditType: "free", source: "s" },
      ],
      [
        { sequence: 7n, total: 100n, used: 40n, frozen: 10n },
        { sequence: 8n, total: 100n, used: 40n, frozen: 0n },
      ],
    );
    expect(payload).toEqual({
      entries: [
        {
          sequence: 7n,
          operation: "CONSUME",
          amount: 40n,
          accountId: 3n,
          creditType: "paid",
          balanceAfter: { total: 100n, used: 40n, frozen: 10n, available: 50n },
        },
        {
          sequence: 8n,
          operation: "UNFREEZE",
          amount: 10n,
          accountId: 4n,
          creditType: "free",
          balanceAfter: { total: 100n, used: 40n, frozen: 0n, available: 60n },
        },
      ],
      balanceAfter: { total: 100n, used: 40n, frozen: 0n, available: 60n },
      data: {},
    });
  });

  it("has no balance without entries, and refuses positions that do not match the entries", () => {
    expect(ledgerEventPayload([], [])).toEqual({ entries: [], balanceAfter: null, data: {} });
    expect(() => ledgerEventPayload([{ operation: "DEDUCT", accountId: 1n, amount: 1n, creditType: "x", source: "s" }], [])).toThrow(
      /differ/,
    );
  });

  it("makes the write's outbox event", () => {
    const event = ledgerEvent({
      eventId: "d-1",
      projectId: 2n,
      customerId: "c",
      transactionId: "t",
      write: spendWrite("FREEZE", spend),
      lines: [{ operation: "FREEZE", accountId: 1n, amount: 5n, creditType: "default", source: "default" }],
      positions: [{ sequence: 1n, total: 10n, used: 0n, frozen: 5n }],
      nowMs: 9,
    });
    expect(event).toMatchObject({ eventId: "d-1", projectId: 2n, customerId: "c", type: "ledger.freeze", transactionId: "t", nowMs: 9 });
    expect(event.payload.balanceAfter).toEqual({ total: 10n, used: 0n, frozen: 5n, available: 5n });
  });
});
