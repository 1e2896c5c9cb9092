import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountStatus, OperationType } from "../../gen/velobase/billing/v1/billing.js";
import { expectError } from "../support/client.js";
import { DAY, SECOND, ts, uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { consoleSession } from "../support/http.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { hasUnstamped } from "../../src/store/event-feed-store.js";
import { waitFor } from "../support/waiting.js";
import { LEDGER_ENTRY_BYTES_BESIDE_TEXT, LEDGER_PAGE_BYTES_MAX, LEDGER_SCAN_ROWS_MAX } from "../../src/domain/limits.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

const balanceOf = async (customerId: string) => (await s.client.call("getCustomer", { customerId })).balance;

async function newCustomer(amount = 1000n, extra: Record<string, unknown> = {}) {
  const customerId = uid("cust");
  await s.client.call("deposit", { customerId, amount, ...extra });
  return customerId;
}

describe("Deposit", () => {
  it("creates the customer and its account on the first deposit", async () => {
    const customerId = uid("cust");
    const r = await s.client.call("deposit", {
      customerId,
      amount: 500n,
      name: "Ada",
      email: "ada@example.com",
      metadata: { plan: "pro" },
    });
    expect(r.customerId).toBe(customerId);
    expect(r.addedAmount).toBe(500n);
    expect(r.isIdempotentReplay).toBe(false);
    expect(r.account).toMatchObject({
      creditType: "default",
      source: "default",
      total: 500n,
      used: 0n,
      frozen: 0n,
      available: 500n,
      status: AccountStatus.ACCOUNT_STATUS_ACTIVE,
    });
    expect(r.balance).toEqual({ total: 500n, used: 0n, frozen: 0n, available: 500n });
    const c = await s.client.call("getCustomer", { customerId });
    expect(c).toMatchObject({ name: "Ada", email: "ada@example.com", metadata: { plan: "pro" } });
    expect(c.creditTypes).toHaveLength(1);
    expect(c.creditTypes[0]?.accounts[0]?.id).toBe(r.account?.id);
  });

  it("replays the same key and adds a new key to the same account", async () => {
    const customerId = uid("cust");
    const key = uid("dep");
    const first = await s.client.call("deposit", { customerId, amount: 100n, idempotencyKey: key });
    const replay = await s.client.call("deposit", { customerId, amount: 100n, idempotencyKey: key });
    expect(replay).toEqual({ ...first, isIdempotentReplay: true });
    const second = await s.client.call("deposit", { customerId, amount: 50n, idempotencyKey: uid("dep") });
    expect(second.account?.id).toBe(first.account?.id);
    expect(second.account?.total).toBe(150n);
    expect(second.balance?.available).toBe(150n);
    await expectError(s.client.call("deposit", { customerId, amount: 101n, idempotencyKey: key }), "idempotency_conflict");
    await expectError(s.client.call("deposit", { customerId: uid("other"), amount: 100n, idempotencyKey: key }), "transaction_conflict");
    expect(await balanceOf(customerId)).toEqual({ total: 150n, used: 0n, frozen: 0n, available: 150n });
  });

  it("keeps a future starts_at PENDING and unspendable until then", async () => {
    const customerId = await newCustomer(100n);
    const startsAt = s.clock.now() + DAY;
    const r = await s.client.call("deposit", { customerId, amount: 900n, startsAt: ts(startsAt) });
    expect(r.account?.status).toBe(AccountStatus.ACCOUNT_STATUS_PENDING);
    expect(r.balance).toEqual({ total: 100n, used: 0n, frozen: 0n, available: 100n });
    const info = await expectError(s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 500n }), "insufficient_balance");
    expect(info).toEqual({ requested: "500", available: "100", wallet: "*" });
    const hidden = await s.client.call("getCustomer", { customerId });
    expect(hidden.creditTypes[0]?.accounts).toHaveLength(1);
    const all = await s.client.call("getCustomer", { customerId, includeInactive: true });
    expect(all.creditTypes[0]?.accounts.map((a) => a.status)).toEqual([
      AccountStatus.ACCOUNT_STATUS_ACTIVE,
      AccountStatus.ACCOUNT_STATUS_PENDING,
    ]);
    s.clock.advance(DAY);
    const d = await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 500n });
    expect(d.balance).toEqual({ total: 1000n, used: 500n, frozen: 0n, available: 500n });
  });

  it("ignores expired accounts", async () => {
    const customerId = await newCustomer(100n);
    await s.client.call("deposit", { customerId, amount: 300n, expiresAt: ts(s.clock.now() + 10 * SECOND) });
    expect((await balanceOf(customerId))?.available).toBe(400n);
    s.clock.advance(10 * SECOND); // expiry at exactly now counts as expired
    expect(await balanceOf(customerId)).toEqual({ total: 100n, used: 0n, frozen: 0n, available: 100n });
    const all = await s.client.call("getCustomer", { customerId, includeInactive: true });
    expect(all.creditTypes[0]?.accounts.map((a) => a.status)).toContain(AccountStatus.ACCOUNT_STATUS_EXPIRED);
    await expectError(s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 101n }), "insufficient_balance");
  });
});

describe("Allocation", () => {
  it("spends soonest-expiring first across three accounts, one ledger entry per account", async () => {
    const customerId = uid("cust");
    const now = s.clock.now();
    const never = await s.client.call("deposit", { customerId, amount: 100n });
    const late = await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(now + 30 * DAY) });
    const soon = await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(now + DAY) });
    const tx = uid("tx");
    const r = await s.client.call("deduct", { customerId, transactionId: tx, amount: 250n });
    expect(r.details.map((d) => [d.accountId, d.amount])).toEqual([
      [soon.account?.id, 100n],
      [late.account?.id, 100n],
      [never.account?.id, 50n],
    ]);
    expect(r.deductedAmount).toBe(250n);
    expect(r.balance).toEqual({ total: 300n, used: 250n, frozen: 0n, available: 50n });
    const ledger = await s.client.call("listLedgerEntries", { customerId, transactionId: tx });
    expect(ledger.entries.map((e) => [e.operation, e.accountId, e.amount])).toEqual([
      [OperationType.OPERATION_TYPE_DEDUCT, never.account?.id, 50n],
      [OperationType.OPERATION_TYPE_DEDUCT, late.account?.id, 100n],
      [OperationType.OPERATION_TYPE_DEDUCT, soon.account?.id, 100n],
    ]);
  });

  it("reads past the first 16 accounts when they do not cover the amount", async () => {
    const customerId = uid("cust");
    const now = s.clock.now();
    const ids: string[] = [];
    for (let i = 20; i >= 1; i--) {
      const r = await s.client.call("deposit", { customerId, amount: 10n, expiresAt: ts(now + i * DAY) });
      ids.unshift(r.account?.id ?? "");
    }
    const info = await expectError(s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 201n }), "insufficient_balance");
    expect(info).toEqual({ requested: "201", available: "200", wallet: "*" });
    const r = await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 195n });
    expect(r.details.map((d) => d.accountId)).toEqual(ids);
    expect(r.details.at(-1)?.amount).toBe(5n);
    expect(r.balance).toEqual({ total: 200n, used: 195n, frozen: 0n, available: 5n });
  });

  it("filters by credit type and tells insufficient from insufficient-in-selected-types", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n, creditType: "promo" });
    await s.client.call("deposit", { customerId, amount: 200n, creditType: "paid" });
    const r = await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 150n, creditTypes: ["paid"] });
    expect(r.details.map((d) => [d.creditType, d.amount])).toEqual([["paid", 150n]]);
    const selected = await expectError(
      s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 60n, creditTypes: ["paid"] }),
      "insufficient_balance_in_selected_credit_types",
    );
    expect(selected).toEqual({ requested: "60", available: "50", wallet: "paid" });
    const all = await expectError(s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 151n }), "insufficient_balance");
    expect(all).toEqual({ requested: "151", available: "150", wallet: "*" });
    expect(await balanceOf(customerId)).toEqual({ total: 300n, used: 150n, frozen: 0n, available: 150n });
  });

  it("fails deduct and freeze on an unknown customer", async () => {
    await expectError(s.client.call("deduct", { customerId: uid("ghost"), transactionId: uid("tx"), amount: 1n }), "customer_not_found");
    await expectError(s.client.call("freeze", { customerId: uid("ghost"), transactionId: uid("tx"), amount: 1n }), "customer_not_found");
  });
});

describe("Freeze lifecycle", () => {
  it("freezes 600, consumes 400 and returns 200 to the same accounts", async () => {
    const customerId = uid("cust");
    const a = await s.client.call("deposit", { customerId, amount: 500n, expiresAt: ts(s.clock.now() + DAY) });
    const b = await s.client.call("deposit", { customerId, amount: 500n });
    const tx = uid("hold");
    const f = await s.client.call("freeze", { customerId, transactionId: tx, amount: 600n });
    expect(f.details.map((d) => [d.accountId, d.amount])).toEqual([
      [a.account?.id, 500n],
      [b.account?.id, 100n],
    ]);
    expect(f.balance).toEqual({ total: 1000n, used: 0n, frozen: 600n, available: 400n });
    const c = await s.client.call("consume", { transactionId: tx, actualAmount: 400n });
    expect(c).toMatchObject({ consumedAmount: 400n, returnedAmount: 200n, overageAmount: 0n, isIdempotentReplay: false });
    expect(c.details.map((d) => [d.accountId, d.amount])).toEqual([[a.account?.id, 400n]]);
    expect(c.returnedDetails.map((d) => [d.accountId, d.amount])).toEqual([
      [a.account?.id, 100n],
      [b.account?.id, 100n],
    ]);
    expect(c.balance).toEqual({ total: 1000n, used: 400n, frozen: 0n, available: 600n });
    const replay = await s.client.call("consume", { transactionId: tx, actualAmount: 400n });
    expect(replay).toEqual({ ...c, isIdempotentReplay: true });
    await expectError(s.client.call("consume", { transactionId: tx, actualAmount: 300n }), "freeze_records_already_consumed");
    await expectError(s.client.call("unfreeze", { transactionId: tx }), "no_unfreezable_records");
    const t = await s.client.call("getTransaction", { transactionId: tx });
    expect(t).toMatchObject({ customerId, amount: 600n, consumedAmount: 400n, returnedAmount: 200n });
  });

  it("consumes the whole hold when actual_amount is unset, and nothing when it is 0", async () => {
    const customerId = await newCustomer(1000n);
    const whole = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: whole, amount: 300n });
    const c = await s.client.call("consume", { transactionId: whole });
    expect([c.consumedAmount, c.returnedAmount]).toEqual([300n, 0n]);
    const none = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: none, amount: 200n });
    const z = await s.client.call("consume", { transactionId: none, actualAmount: 0n });
    expect([z.consumedAmount, z.returnedAmount, z.details.length]).toEqual([0n, 200n, 0]);
    expect(z.balance).toEqual({ total: 1000n, used: 300n, frozen: 0n, available: 700n });
  });

  it("refuses overage without allow_overage and charges it with it", async () => {
    const customerId = await newCustomer(1000n);
    const tx = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: tx, amount: 100n });
    const info = await expectError(
      s.client.call("consume", { transactionId: tx, actualAmount: 150n }),
      "actual_amount_exceeds_frozen_amount",
    );
    expect(info).toEqual({ requested: "150", frozen: "100" });
    await expectError(s.client.call("consume", { transactionId: tx, actualAmount: 2000n, allowOverage: true }), "insufficient_balance");
    const c = await s.client.call("consume", { transactionId: tx, actualAmount: 150n, allowOverage: true });
    expect(c).toMatchObject({ consumedAmount: 150n, returnedAmount: 0n, overageAmount: 50n });
    expect(c.details.map((d) => d.amount)).toEqual([100n, 50n]);
    expect(c.balance).toEqual({ total: 1000n, used: 150n, frozen: 0n, available: 850n });
    const overage = await s.client.call("listLedgerEntries", {
      customerId,
      transactionId: tx,
      operationTypes: [OperationType.OPERATION_TYPE_CONSUME],
    });
    expect(overage.entries.map((e) => [e.amount, e.overage])).toEqual([
      [50n, true],
      [100n, false],
    ]);
  });

  it("unfreezes a hold once; a repeat replays and a consume after it fails", async () => {
    const customerId = await newCustomer(1000n);
    const tx = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: tx, amount: 400n });
    const u = await s.client.call("unfreeze", { transactionId: tx, customerId });
    expect(u.unfrozenAmount).toBe(400n);
    expect(u.balance).toEqual({ total: 1000n, used: 0n, frozen: 0n, available: 1000n });
    expect(await s.client.call("unfreeze", { transactionId: tx })).toEqual({ ...u, isIdempotentReplay: true });
    await expectError(s.client.call("consume", { transactionId: tx }), "no_consumable_freeze_records");
    await expectError(s.client.call("unfreeze", { transactionId: uid("unknown") }), "no_unfreezable_records");
    await expectError(s.client.call("consume", { transactionId: uid("unknown") }), "no_consumable_freeze_records");
  });

  it("rejects a customer_id that is not the hold's", async () => {
    const customerId = await newCustomer(100n);
    const tx = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: tx, amount: 10n });
    await expectError(s.client.call("consume", { transactionId: tx, customerId: uid("intruder") }), "customer_scope_mismatch");
    await expectError(s.client.call("unfreeze", { transactionId: tx, customerId: uid("intruder") }), "customer_scope_mismatch");
    expect((await balanceOf(customerId))?.frozen).toBe(10n);
  });

  it("lets a consume spend a hold whose account expired meanwhile", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n, expiresAt: ts(s.clock.now() + 5 * SECOND) });
    const tx = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: tx, amount: 80n });
    s.clock.advance(6 * SECOND);
    const c = await s.client.call("consume", { transactionId: tx, actualAmount: 80n });
    expect(c.consumedAmount).toBe(80n);
    expect(c.balance).toEqual({ total: 0n, used: 0n, frozen: 0n, available: 0n });
  });
});

describe("Idempotency of Deduct and Freeze", () => {
  it("replays, reports idempotency_conflict and transaction_conflict", async () => {
    const customerId = await newCustomer(1000n);
    const tx = uid("tx");
    const first = await s.client.call("deduct", { customerId, transactionId: tx, amount: 10n, description: "job 1" });
    expect(await s.client.call("deduct", { customerId, transactionId: tx, amount: 10n, description: "job 1" })).toEqual({
      ...first,
      isIdempotentReplay: true,
    });
    await expectError(
      s.client.call("deduct", { customerId, transactionId: tx, amount: 11n, description: "job 1" }),
      "idempotency_conflict",
    );
    await expectError(
      s.client.call("freeze", { customerId, transactionId: tx, amount: 10n, description: "job 1" }),
      "idempotency_conflict",
    );
    const other = await newCustomer(1000n);
    await expectError(s.client.call("deduct", { customerId: other, transactionId: tx, amount: 10n }), "transaction_conflict");
    const hold = uid("hold");
    const f = await s.client.call("freeze", { customerId, transactionId: hold, amount: 5n, creditTypes: ["default", "default"] });
    expect(await s.client.call("freeze", { customerId, transactionId: hold, amount: 5n, creditTypes: ["default"] })).toEqual({
      ...f,
      isIdempotentReplay: true,
    });
    expect(await balanceOf(customerId)).toEqual({ total: 1000n, used: 10n, frozen: 5n, available: 985n });
  });
});

describe("Ids", () => {
  it("compare byte for byte: TX1 and tx1 are two keys, Cust and cust two customers", async () => {
    const customerId = uid("Cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    await s.client.call("deposit", { customerId: customerId.toLowerCase(), amount: 1n });
    const tx = uid("TX");
    await s.client.call("deduct", { customerId, transactionId: tx, amount: 10n });
    const second = await s.client.call("deduct", { customerId, transactionId: tx.toLowerCase(), amount: 10n });
    expect(second.isIdempotentReplay).toBe(false);
    expect(await balanceOf(customerId)).toEqual({ total: 100n, used: 20n, frozen: 0n, available: 80n });
    expect(await balanceOf(customerId.toLowerCase())).toEqual({ total: 1n, used: 0n, frozen: 0n, available: 1n });
  });
});

describe("Ledger listing", () => {
  it("pages newest first with an opaque cursor bound to its filters", async () => {
    const customerId = uid("cust");
    for (let i = 1n; i <= 5n; i++) await s.client.call("deposit", { customerId, amount: i });
    const p1 = await s.client.call("listLedgerEntries", { customerId, pageSize: 2 });
    expect(p1.entries.map((e) => e.amount)).toEqual([5n, 4n]);
    const p2 = await s.client.call("listLedgerEntries", { customerId, pageSize: 2, pageToken: p1.nextPageToken });
    expect(p2.entries.map((e) => e.amount)).toEqual([3n, 2n]);
    const p3 = await s.client.call("listLedgerEntries", { customerId, pageSize: 2, pageToken: p2.nextPageToken });
    expect([p3.entries.map((e) => e.amount), p3.nextPageToken]).toEqual([[1n], ""]);
    await expectError(
      s.client.call("listLedgerEntries", { customerId, pageSize: 2, pageToken: p1.nextPageToken, creditType: "x" }),
      "invalid_page_token",
    );
    await expectError(s.client.call("listLedgerEntries", { customerId, pageToken: "garbage" }), "invalid_page_token");
    await expectError(s.client.call("listLedgerEntries", { customerId, pageSize: 101 }), "invalid_page_size");
    await expectError(
      s.client.call("listLedgerEntries", { customerId, operationTypes: [OperationType.OPERATION_TYPE_UNSPECIFIED] }),
      "invalid_operation_type",
    );
  });
});

describe("Ledger time bounds", () => {
  it("round a sub-millisecond bound up on both transports: an entry stored at t is before t + 0.5 ms", async () => {
    const customerId = await newCustomer(10n);
    const [entry] = (await s.client.call("listLedgerEntries", { customerId })).entries;
    const at = entry?.createdAt as { seconds: bigint; nanos: number };
    const half = { seconds: at.seconds, nanos: at.nanos + 500_000 };
    const before = await s.client.call("listLedgerEntries", { customerId, createdBefore: half });
    const after = await s.client.call("listLedgerEntries", { customerId, createdAfter: half });
    const iso = `${new Date(Number(at.seconds) * 1000 + at.nanos / 1_000_000).toISOString().slice(0, -1)}5Z`;
    const headers = { authorization: `Bearer ${s.apiKey}` };
    const count = async (bound: string) =>
      (
        (await (await fetch(`${s.httpUrl}/v1/customers/${customerId}/ledger?${bound}=${iso}`, { headers })).json()) as {
          total_count: number;
        }
      ).total_count;
    expect([before.entries.length, after.entries.length, await count("created_before"), await count("created_after")]).toEqual([
      1, 0, 1, 0,
    ]);
  });
});

describe("Ledger pages by size", () => {
  it("ends a page early when its entries' metadata would pass LEDGER_PAGE_BYTES_MAX, and pages on to every entry once", async () => {
    const customerId = uid("cust");
    const accounts = 50;
    for (let i = 0; i < accounts; i++) await s.client.call("deposit", { customerId, amount: 1n, source: `s${i}` });
    // The largest metadata a write takes, in 3-byte characters: each of the Deduct's 50 entries shows it.
    const metadata = Object.fromEntries(Array.from({ length: 32 }, (_, k) => [`k${k}`, "€".repeat(1024)]));
    await s.client.call("deduct", { customerId, transactionId: uid("t"), amount: BigInt(accounts), metadata });
    const entryBytes = LEDGER_ENTRY_BYTES_BESIDE_TEXT + Buffer.byteLength(JSON.stringify(metadata));
    const perPage = Math.floor(LEDGER_PAGE_BYTES_MAX / entryBytes);
    const pages: { operations: OperationType[]; sequences: bigint[] }[] = [];
    let pageToken = "";
    do {
      const page = await s.client.call("listLedgerEntries", { customerId, pageSize: 100, pageToken });
      pages.push({ operations: page.entries.map((e) => e.operation), sequences: page.entries.map((e) => e.sequence) });
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(pages[0]?.operations).toEqual(Array(perPage).fill(OperationType.OPERATION_TYPE_DEDUCT));
    const sequences = pages.flatMap((p) => p.sequences);
    expect(sequences).toEqual(Array.from({ length: 2 * accounts }, (_, i) => BigInt(2 * accounts - i)));
    // The Deduct's entries fill pages of perPage; the page with its last ones takes every (small) deposit's too.
    const deductPages = Math.ceil(accounts / perPage);
    expect(pages.map((p) => p.sequences.length)).toEqual([
      ...Array(deductPages - 1).fill(perPage),
      accounts - perPage * (deductPages - 1) + accounts,
    ]);
  });
});

describe("Filtered ledger pages", () => {
  it("look through at most LEDGER_SCAN_ROWS_MAX entries each, ending early with a cursor, and page on to every match once", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 1_000_000n });
    // More Deducts than one filtered page looks through, between two deposits.
    const deducts = LEDGER_SCAN_ROWS_MAX + 100;
    for (let done = 0; done < deducts; done += 100) {
      const operations = Array.from({ length: 100 }, () => ({
        operation: { $case: "deduct" as const, value: { customerId, transactionId: uid("t"), amount: 1n } },
      }));
      const response = await s.client.call("batch", { operations, atomic: true });
      expect(response.failedIndex).toBeUndefined();
    }
    await s.client.call("deposit", { customerId, amount: 5n });
    const last = BigInt(deducts + 2);

    const deposits: bigint[][] = [];
    let pageToken = "";
    do {
      const page = await s.client.call("listLedgerEntries", {
        customerId,
        operationTypes: [OperationType.OPERATION_TYPE_DEPOSIT],
        pageSize: 20,
        pageToken,
      });
      deposits.push(page.entries.map((e) => e.sequence));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    // The first page looked through the newest LEDGER_SCAN_ROWS_MAX entries: the last deposit only.
    expect(deposits).toEqual([[last], [1n]]);

    // Unfiltered pages are not cut; HTTP's total_count counts every matching entry on every page.
    const newest = await s.client.call("listLedgerEntries", { customerId, pageSize: 100 });
    expect([newest.entries.length, newest.entries[0]?.sequence, newest.nextPageToken !== ""]).toEqual([100, last, true]);
    const headers = { authorization: `Bearer ${s.apiKey}` };
    const all = (await (await fetch(`${s.httpUrl}/v1/customers/${customerId}/ledger?limit=1`, { headers })).json()) as {
      total_count: number;
    };
    const granted = (await (
      await fetch(`${s.httpUrl}/v1/customers/${customerId}/ledger?limit=1&operation_type=GRANT`, { headers })
    ).json()) as { items: { sequence: number }[]; total_count: number; has_more: boolean; next_cursor: string };
    expect([all.total_count, granted.items.map((i) => i.sequence), granted.total_count, granted.has_more]).toEqual([
      Number(last),
      [Number(last)],
      2,
      true,
    ]);
    // The next page counts on from the first page's count: the deposit made meanwhile counts too.
    await s.client.call("deposit", { customerId, amount: 6n });
    const next = (await (
      await fetch(`${s.httpUrl}/v1/customers/${customerId}/ledger?limit=1&operation_type=GRANT&cursor=${granted.next_cursor}`, {
        headers,
      })
    ).json()) as { items: { sequence: number }[]; total_count: number; has_more: boolean };
    expect([next.items.map((i) => i.sequence), next.total_count, next.has_more]).toEqual([[1], 3, false]);
    // The console's ledger filtered to VOID (there is none): its first page looked at the newest entries only, and says so.
    const session = await consoleSession(s.httpUrl, s.apiKey);
    const html = await (
      await fetch(`${s.httpUrl}/console/customers/${customerId}?op=VOID#ledger`, { headers: { cookie: session.cookie } })
    ).text();
    expect([
      html.includes('data-testid="ledger-none-yet"'),
      html.includes('data-testid="ledger-empty"'),
      html.includes('data-testid="ledger-next"'),
    ]).toEqual([true, false, true]);
  }, 120_000);
});

describe("verify", () => {
  const count = async (query: string): Promise<number> => {
    const [rows] = await s.app.database.pool.query<RowDataPacket[]>(query);
    return Number(rows[0]?.n);
  };
  /** What verify reports counted in the database itself (events: the stamped ones). */
  const counted = async () => ({
    accounts: await count("SELECT COUNT(*) AS n FROM accounts"),
    ledgerEntries: await count("SELECT COUNT(*) AS n FROM ledger_entries"),
    transactions: await count("SELECT COUNT(*) AS n FROM transactions"),
    events: await count("SELECT COUNT(position) AS n FROM events"),
    pools: await count("SELECT COUNT(*) AS n FROM slot_pools"),
  });
  /** Verify once every committed event has its position (the stamper is not behind). */
  const verified = async () => {
    await waitFor(async () => !(await hasUnstamped(s.app.database.pool)), "every event to be stamped");
    return verifyLedger(s.app.database.db);
  };

  it("recomputes every account from the ledger and finds no difference, counting every row", async () => {
    const before = await verified();
    // Data of its own, whatever ran before: 2 accounts, 2 charges, 5 ledger entries and 5 events (one each write).
    const customerId = uid("verify");
    await s.client.call("deposit", { customerId, amount: 100n, creditType: "paid" });
    await s.client.call("deposit", { customerId, amount: 50n, creditType: "promo" });
    await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 30n, creditTypes: ["paid"] });
    const hold = uid("hold");
    await s.client.call("freeze", { customerId, transactionId: hold, amount: 20n, creditTypes: ["promo"] });
    await s.client.call("consume", { transactionId: hold, actualAmount: 20n });
    const report = await verified();
    expect(report).toEqual({ ...(await counted()), problems: [] });
    expect(report).toEqual({
      accounts: before.accounts + 2,
      ledgerEntries: before.ledgerEntries + 5,
      transactions: before.transactions + 2,
      events: before.events + 5,
      pools: before.pools,
      problems: [],
    });
  });
});

describe("Records under a hold", () => {
  it("reports billing_account_not_found when an account under a hold is gone", async () => {
    const customerId = await newCustomer(100n);
    const tx = uid("hold");
    const f = await s.client.call("freeze", { customerId, transactionId: tx, amount: 10n });
    await s.app.database.pool.query("DELETE FROM accounts WHERE id = ?", [f.details[0]?.accountId]);
    const info = await expectError(s.client.call("consume", { transactionId: tx }), "billing_account_not_found");
    expect(info).toMatchObject({ account_id: f.details[0]?.accountId });
    await expectError(s.client.call("unfreeze", { transactionId: tx }), "billing_account_not_found");
  });

  it("refuses to change or delete ledger entries", async () => {
    await expect(s.app.database.pool.query("UPDATE ledger_entries SET amount = amount + 1")).rejects.toThrow(/append-only/);
    await expect(s.app.database.pool.query("DELETE FROM ledger_entries")).rejects.toThrow(/append-only/);
  });
});
