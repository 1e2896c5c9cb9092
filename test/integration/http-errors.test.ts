import { pino } from "pino";
import { afterAll, beforeAll, describe, it } from "vitest";
import { sweepDueHolds } from "../../src/operations/sweeper.js";
import type { ErrorCode } from "../../src/errors/catalog.js";
import { uid } from "../support/fixtures.js";
import { expectHttpError, httpClientFor, ok, type HttpTestClient } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Every error code each HTTP route can raise, with its exact body. Auth codes are in
// http-api.test.ts; permission_denied, rate_limit_exceeded and service_unavailable in
// http-service.test.ts.
let s: TestServer;
let http: HttpTestClient;
/** 100 in "default", 50 in "paid". */
let rich: string;

const ID_MESSAGE = (field: string) => `${field} must be 1-128 characters of [A-Za-z0-9_.:@-].`;
/** An id a request may leave out: empty is none. */
const OPTIONAL_ID_MESSAGE = (field: string) => `${field} must be 1-128 characters of [A-Za-z0-9_.:@-].`;
const AMOUNT_MAX_MESSAGE = "amount must be at most 1000000000000000.";

interface Case {
  readonly name: string;
  readonly body: () => unknown;
  readonly code: ErrorCode;
  readonly message?: string;
  readonly details?: () => Record<string, unknown>;
  readonly headers?: Record<string, string>;
  readonly raw?: string;
}

beforeAll(async () => {
  s = await startTestServer();
  http = await httpClientFor(s);
  rich = uid("rich");
  ok(await http.post("/v1/customers/deposit", { customer_id: rich, amount: 100 }));
  ok(await http.post("/v1/customers/deposit", { customer_id: rich, amount: 50, wallet: "paid" }));
});
afterAll(async () => s?.stop());

async function check(path: string, c: Case): Promise<void> {
  const options = { ...(c.headers ? { headers: { "content-type": "application/json", ...c.headers } } : {}) };
  const response =
    c.raw !== undefined
      ? await http.request("POST", path, { raw: c.raw, headers: { "content-type": "application/json" } })
      : await http.post(path, c.body(), options);
  expectHttpError(response, c.code, {
    ...(c.message === undefined ? {} : { message: c.message }),
    details: c.details?.() ?? {},
  });
}

const field = (name: string) => () => ({ field: name });

describe("POST /v1/customers/deposit", () => {
  const base = () => ({ customer_id: uid("dep"), amount: 10 });
  const cases: Case[] = [
    {
      name: "no customer_id",
      body: () => ({ amount: 1 }),
      code: "customer_id_required",
      message: "customer_id is required.",
      details: field("customer_id"),
    },
    {
      name: "empty customer_id",
      body: () => ({ customer_id: "", amount: 1 }),
      code: "customer_id_required",
      message: "customer_id is required.",
      details: field("customer_id"),
    },
    {
      name: "malformed customer_id",
      body: () => ({ customer_id: "has space", amount: 1 }),
      code: "invalid_argument",
      message: ID_MESSAGE("customer_id"),
      details: field("customer_id"),
    },
    {
      name: "no amount",
      body: () => ({ customer_id: "c" }),
      code: "amount_must_be_positive",
      message: "amount is required.",
      details: field("amount"),
    },
    { name: "amount 0", body: () => ({ ...base(), amount: 0 }), code: "amount_must_be_positive", details: field("amount") },
    { name: "amount -5", body: () => ({ ...base(), amount: -5 }), code: "amount_must_be_positive", details: field("amount") },
    { name: "amount 1.5", body: () => ({ ...base(), amount: 1.5 }), code: "amount_must_be_positive", details: field("amount") },
    { name: "amount as a string", body: () => ({ ...base(), amount: "10" }), code: "amount_must_be_positive", details: field("amount") },
    {
      name: "amount above the limit",
      body: () => ({ ...base(), amount: 10 ** 15 + 1 }),
      code: "invalid_argument",
      message: AMOUNT_MAX_MESSAGE,
      details: field("amount"),
    },
    {
      name: "amount beyond 2^53",
      body: () => null,
      raw: '{"customer_id": "c", "amount": 9007199254740993}',
      code: "invalid_argument",
      message: AMOUNT_MAX_MESSAGE,
      details: field("amount"),
    },
    { name: "malformed wallet", body: () => ({ ...base(), wallet: "Paid!" }), code: "invalid_credit_types", details: field("wallet") },
    {
      name: "malformed credit_type",
      body: () => ({ ...base(), credit_type: "Paid!" }),
      code: "invalid_credit_types",
      details: field("credit_type"),
    },
    {
      name: "wallet and credit_type differ",
      body: () => ({ ...base(), wallet: "a", credit_type: "b" }),
      code: "invalid_argument",
      message: "wallet and credit_type differ; send wallet only.",
      details: field("wallet"),
    },
    {
      name: "malformed source",
      body: () => ({ ...base(), source: "a b" }),
      code: "invalid_argument",
      message: "source must be 1-64 characters of [A-Za-z0-9_.:@-].",
      details: field("source"),
    },
    {
      name: "unparseable starts_at",
      body: () => ({ ...base(), starts_at: "soon" }),
      code: "invalid_starts_at",
      details: field("starts_at"),
    },
    {
      name: "starts_at not a string",
      body: () => ({ ...base(), starts_at: 1767225600 }),
      code: "invalid_starts_at",
      details: field("starts_at"),
    },
    {
      name: "unparseable expires_at",
      body: () => ({ ...base(), expires_at: "2026-01-01T00:00:00Q" }),
      code: "invalid_expires_at",
      message: "expires_at is not a valid timestamp.",
      details: field("expires_at"),
    },
    {
      name: "expires_at in the past",
      body: () => ({ ...base(), expires_at: "2025-12-31T23:59:59.999Z" }),
      code: "invalid_expires_at",
      message: "expires_at must be in the future.",
      details: field("expires_at"),
    },
    {
      name: "expires_at at starts_at",
      body: () => ({ ...base(), starts_at: "2026-06-01", expires_at: "2026-06-01T00:00:00Z" }),
      code: "invalid_datetime_range",
      message: "expires_at must be after starts_at.",
      details: field("expires_at"),
    },
    {
      name: "Idempotency-Key header and body differ",
      body: () => ({ ...base(), idempotency_key: "k1" }),
      headers: { "Idempotency-Key": "k2" },
      code: "invalid_argument",
      message: "The Idempotency-Key header and idempotency_key differ.",
      details: field("idempotency_key"),
    },
    {
      name: "malformed idempotency_key",
      body: () => ({ ...base(), idempotency_key: "a b" }),
      code: "invalid_argument",
      message: ID_MESSAGE("idempotency_key"),
      details: field("idempotency_key"),
    },
    {
      name: "malformed Idempotency-Key header",
      body: base,
      headers: { "Idempotency-Key": "a/b" },
      code: "invalid_argument",
      message: "idempotency_key must be 1-128 characters of [A-Za-z0-9_.:@-].",
      details: field("idempotency_key"),
    },
    {
      name: "metadata not an object",
      body: () => ({ ...base(), metadata: ["a"] }),
      code: "invalid_argument",
      message: "metadata must be object.",
      details: field("metadata"),
    },
    {
      name: "metadata with 33 keys",
      body: () => ({ ...base(), metadata: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, i])) }),
      code: "invalid_argument",
      message: "metadata holds at most 32 keys.",
      details: field("metadata"),
    },
    {
      name: "a metadata value over 1024 characters as JSON",
      body: () => ({ ...base(), metadata: { list: Array.from({ length: 300 }, () => 1234) } }),
      code: "invalid_argument",
      message: "metadata values must be at most 1024 characters.",
      details: field("metadata"),
    },
    {
      name: "name too long",
      body: () => ({ ...base(), name: "n".repeat(256) }),
      code: "invalid_argument",
      message: "name must be at most 255 characters.",
      details: field("name"),
    },
    {
      name: "email not a string",
      body: () => ({ ...base(), email: 5 }),
      code: "invalid_argument",
      message: "email must be string.",
      details: field("email"),
    },
    {
      name: "description too long",
      body: () => ({ ...base(), description: "d".repeat(1025) }),
      code: "invalid_argument",
      message: "description must be at most 1024 characters.",
      details: field("description"),
    },
  ];
  it.each(cases)("$name → $code", (c) => check("/v1/customers/deposit", c));

  it("same key, other amount → idempotency_conflict; other customer → transaction_conflict", async () => {
    const key = uid("key");
    const customer = uid("dep");
    ok(await http.post("/v1/customers/deposit", { customer_id: customer, amount: 10, idempotency_key: key }));
    expectHttpError(
      await http.post("/v1/customers/deposit", { customer_id: customer, amount: 11, idempotency_key: key }),
      "idempotency_conflict",
    );
    expectHttpError(
      await http.post("/v1/customers/deposit", { customer_id: uid("dep"), amount: 10, idempotency_key: key }),
      "transaction_conflict",
    );
  });
});

describe("GET /v1/customers/{customer_id}", () => {
  it("unknown → customer_not_found; malformed id → invalid_argument", async () => {
    expectHttpError(await http.get("/v1/customers/nobody"), "customer_not_found", { details: { customer_id: "nobody" } });
    expectHttpError(await http.get("/v1/customers/a%20b"), "invalid_argument", {
      message: ID_MESSAGE("customer_id"),
      details: { field: "customer_id" },
    });
  });

  it("an amount beyond 2^53 - 1 in stored data fails loudly as server_error, never rounded", async () => {
    const customer = uid("huge");
    ok(await http.post("/v1/customers/deposit", { customer_id: customer, amount: 5 }));
    await s.app.database.pool.query(
      "UPDATE accounts a JOIN customers c ON c.id = a.customer_pk SET a.total = 9007199254740993 WHERE c.customer_id = ?",
      [customer],
    );
    expectHttpError(await http.get(`/v1/customers/${customer}`), "server_error");
  });
});

describe("GET /v1/customers/{customer_id}/ledger", () => {
  const ledger = (query: string) => http.get(`/v1/customers/${rich}/ledger?${query}`);
  it.each(["limit=0", "limit=101", "limit=abc", "limit=1.5"])("%s → invalid_limit", async (query) => {
    expectHttpError(await ledger(query), "invalid_limit", { details: { field: "limit" } });
  });

  it("unknown operation_type → invalid_operation_type", async () => {
    expectHttpError(await ledger("operation_type=REVERSE"), "invalid_operation_type", { details: { field: "operation_type" } });
  });

  it("a cursor that is garbage, or was issued for other filters → invalid_page_token", async () => {
    const cursorError = { message: "cursor is not valid for this request.", details: { field: "cursor" } };
    expectHttpError(await ledger("cursor=garbage"), "invalid_page_token", cursorError);
    const page = ok<{ next_cursor: string }>(await ledger("limit=1"));
    expectHttpError(await ledger(`limit=1&operation_type=GRANT&cursor=${page.next_cursor}`), "invalid_page_token", cursorError);
  });

  it("malformed transaction_id → invalid_argument; unknown customer → customer_not_found", async () => {
    expectHttpError(await ledger("transaction_id=a%20b"), "invalid_argument", {
      message: ID_MESSAGE("transaction_id"),
      details: { field: "transaction_id" },
    });
    expectHttpError(await http.get("/v1/customers/nobody/ledger"), "customer_not_found", { details: { customer_id: "nobody" } });
  });
});

/** The failures Deduct and Freeze share. */
function spendCases(): Case[] {
  const base = () => ({ customer_id: rich, amount: 10, transaction_id: uid("tx") });
  return [
    {
      name: "no customer_id",
      body: () => ({ amount: 1, transaction_id: "t" }),
      code: "customer_id_required",
      message: "customer_id is required.",
      details: field("customer_id"),
    },
    {
      name: "no transaction_id",
      body: () => ({ customer_id: rich, amount: 1 }),
      code: "transaction_id_required",
      message: "transaction_id is required.",
      details: field("transaction_id"),
    },
    {
      name: "empty transaction_id",
      body: () => ({ ...base(), transaction_id: "" }),
      code: "transaction_id_required",
      message: "transaction_id is required.",
      details: field("transaction_id"),
    },
    {
      name: "malformed transaction_id",
      body: () => ({ ...base(), transaction_id: "a b" }),
      code: "invalid_argument",
      message: ID_MESSAGE("transaction_id"),
      details: field("transaction_id"),
    },
    { name: "amount 0", body: () => ({ ...base(), amount: 0 }), code: "amount_must_be_positive", details: field("amount") },
    { name: "amount 2.5", body: () => ({ ...base(), amount: 2.5 }), code: "amount_must_be_positive", details: field("amount") },
    {
      name: "amount above the limit",
      body: () => ({ ...base(), amount: 2 ** 53 }),
      code: "invalid_argument",
      message: AMOUNT_MAX_MESSAGE,
      details: field("amount"),
    },
    { name: "malformed wallet", body: () => ({ ...base(), wallet: "UPPER" }), code: "invalid_credit_types", details: field("wallet") },
    {
      name: "malformed credit_types",
      body: () => ({ ...base(), credit_types: ["ok", "Not OK"] }),
      code: "invalid_credit_types",
      details: field("credit_types"),
    },
    {
      name: "33 credit_types",
      body: () => ({ ...base(), credit_types: Array.from({ length: 33 }, (_, i) => `w${i}`) }),
      code: "invalid_credit_types",
      message: "At most 32 credit types.",
      details: field("credit_types"),
    },
    {
      name: "wallet and credit_types",
      body: () => ({ ...base(), wallet: "paid", credit_types: ["paid"] }),
      code: "invalid_argument",
      message: "Send wallet or credit_types, not both.",
      details: field("wallet"),
    },
    {
      name: "unknown business_type",
      body: () => ({ ...base(), business_type: "REFUND" }),
      code: "invalid_argument",
      message: "business_type is not a known value.",
      details: field("business_type"),
    },
    {
      name: "metadata not an object",
      body: () => ({ ...base(), metadata: "x" }),
      code: "invalid_argument",
      message: "metadata must be object.",
      details: field("metadata"),
    },
    {
      name: "description too long",
      body: () => ({ ...base(), description: "d".repeat(1025) }),
      code: "invalid_argument",
      message: "description must be at most 1024 characters.",
      details: field("description"),
    },
    {
      name: "unknown customer",
      body: () => ({ ...base(), customer_id: "nobody" }),
      code: "customer_not_found",
      details: () => ({ customer_id: "nobody" }),
    },
    {
      name: "more than every wallet holds",
      body: () => ({ ...base(), amount: 1000 }),
      code: "insufficient_balance",
      details: () => ({ requested: 1000, available: 150, wallet: "*" }),
    },
    {
      name: "more than the wallet holds, though the customer has enough",
      body: () => ({ ...base(), amount: 60, wallet: "paid" }),
      code: "insufficient_balance_in_selected_credit_types",
      details: () => ({ requested: 60, available: 50, wallet: "paid" }),
    },
    {
      name: "more than the customer holds, from one wallet",
      body: () => ({ ...base(), amount: 1000, credit_types: ["paid", "default"] }),
      code: "insufficient_balance",
      details: () => ({ requested: 1000, available: 150, wallet: "default,paid" }),
    },
  ];
}

async function conflicts(path: string): Promise<void> {
  const tx = uid("tx");
  const [customer, other] = [uid("one"), uid("other")];
  for (const id of [customer, other]) ok(await http.post("/v1/customers/deposit", { customer_id: id, amount: 5 }));
  ok(await http.post(path, { customer_id: customer, amount: 1, transaction_id: tx }));
  expectHttpError(await http.post(path, { customer_id: customer, amount: 2, transaction_id: tx }), "idempotency_conflict");
  expectHttpError(await http.post(path, { customer_id: other, amount: 1, transaction_id: tx }), "transaction_conflict");
}

describe("POST /v1/billing/deduct", () => {
  it.each(spendCases())("$name → $code", (c) => check("/v1/billing/deduct", c));
  it("reused transaction_id → idempotency_conflict / transaction_conflict", () => conflicts("/v1/billing/deduct"));
});

describe("POST /v1/billing/freeze", () => {
  const base = () => ({ customer_id: rich, amount: 1, transaction_id: uid("tx") });
  const ttl = (name: string, max: number) => `${name} must be between 1 and ${max}.`;
  const cases: Case[] = [
    ...spendCases(),
    {
      name: "both auto-settlements",
      body: () => ({ ...base(), unfreeze_after_seconds: 5, consume_after_seconds: 5 }),
      code: "invalid_auto_settlement",
    },
    {
      name: "unfreeze_after_seconds 0",
      body: () => ({ ...base(), unfreeze_after_seconds: 0 }),
      code: "invalid_auto_settlement_ttl",
      message: ttl("unfreeze_after_seconds", 2592000),
      details: field("unfreeze_after_seconds"),
    },
    {
      name: "unfreeze_after_seconds 2592001",
      body: () => ({ ...base(), unfreeze_after_seconds: 2592001 }),
      code: "invalid_auto_settlement_ttl",
      message: ttl("unfreeze_after_seconds", 2592000),
      details: field("unfreeze_after_seconds"),
    },
    {
      name: "consume_after_seconds 604801",
      body: () => ({ ...base(), consume_after_seconds: 604801 }),
      code: "invalid_auto_settlement_ttl",
      message: ttl("consume_after_seconds", 604800),
      details: field("consume_after_seconds"),
    },
    {
      name: "consume_after_seconds 1.5",
      body: () => ({ ...base(), consume_after_seconds: 1.5 }),
      code: "invalid_auto_settlement_ttl",
      details: field("consume_after_seconds"),
    },
  ];
  it.each(cases)("$name → $code", (c) => check("/v1/billing/freeze", c));
  it("reused transaction_id → idempotency_conflict / transaction_conflict", () => conflicts("/v1/billing/freeze"));
});

async function hold(amount = 10, extra: Record<string, unknown> = {}): Promise<string> {
  const tx = uid("hold");
  ok(await http.post("/v1/billing/freeze", { customer_id: rich, amount, transaction_id: tx, ...extra }));
  return tx;
}

describe("POST /v1/billing/consume", () => {
  const consume = (body: Record<string, unknown>) => http.post("/v1/billing/consume", body);

  it.each<Case>([
    {
      name: "no transaction_id",
      body: () => ({ actual_amount: 1 }),
      code: "transaction_id_required",
      message: "transaction_id is required.",
      details: field("transaction_id"),
    },
    {
      name: "negative actual_amount",
      body: () => ({ transaction_id: "t", actual_amount: -1 }),
      code: "actual_amount_must_be_non_negative",
      details: field("actual_amount"),
    },
    {
      name: "fractional actual_amount",
      body: () => ({ transaction_id: "t", actual_amount: 1.5 }),
      code: "invalid_argument",
      message: "actual_amount must be integer.",
      details: field("actual_amount"),
    },
    {
      name: "malformed customer_id",
      body: () => ({ transaction_id: "t", customer_id: "a b" }),
      code: "invalid_argument",
      message: OPTIONAL_ID_MESSAGE("customer_id"),
      details: field("customer_id"),
    },
    {
      name: "allow_overage not a boolean",
      body: () => ({ transaction_id: "t", allow_overage: "yes" }),
      code: "invalid_argument",
      message: "allow_overage must be boolean.",
      details: field("allow_overage"),
    },
    { name: "unknown hold", body: () => ({ transaction_id: uid("none") }), code: "no_consumable_freeze_records" },
  ])("$name → $code", (c) => check("/v1/billing/consume", c));

  it("a deduct's transaction_id → no_consumable_freeze_records", async () => {
    const tx = uid("tx");
    ok(await http.post("/v1/billing/deduct", { customer_id: rich, amount: 1, transaction_id: tx }));
    expectHttpError(await consume({ transaction_id: tx }), "no_consumable_freeze_records");
  });

  it("consumed with another actual_amount → freeze_records_already_consumed", async () => {
    const tx = await hold();
    ok(await consume({ transaction_id: tx, actual_amount: 4 }));
    expectHttpError(await consume({ transaction_id: tx, actual_amount: 5 }), "freeze_records_already_consumed", {
      details: { consumed: 4, requested: 5 },
    });
  });

  it("an unfrozen hold → no_consumable_freeze_records", async () => {
    const tx = await hold();
    ok(await http.post("/v1/billing/unfreeze", { transaction_id: tx }));
    expectHttpError(await consume({ transaction_id: tx }), "no_consumable_freeze_records");
  });

  it("above the hold without allow_overage → actual_amount_exceeds_frozen_amount; beyond the balance → insufficient_balance", async () => {
    // A customer of its own: 50 deposited, 10 held, so 40 is what an overage could take.
    const customer = uid("cust");
    ok(await http.post("/v1/customers/deposit", { customer_id: customer, amount: 50 }));
    const tx = uid("hold");
    ok(await http.post("/v1/billing/freeze", { customer_id: customer, amount: 10, transaction_id: tx }));
    expectHttpError(await consume({ transaction_id: tx, actual_amount: 11, allow_overage: false }), "actual_amount_exceeds_frozen_amount", {
      details: { requested: 11, frozen: 10 },
    });
    expectHttpError(await consume({ transaction_id: tx, actual_amount: 100_000 }), "insufficient_balance", {
      details: { requested: 99_990, available: 40, wallet: "*" },
    });
  });

  it("another customer's hold → customer_scope_mismatch", async () => {
    const tx = await hold();
    expectHttpError(await consume({ transaction_id: tx, customer_id: "someone-else" }), "customer_scope_mismatch", {
      details: { customer_id: "someone-else" },
    });
  });

  it("a hold the sweeper unfroze → freeze_auto_unfrozen", async () => {
    const tx = await hold(3, { unfreeze_after_seconds: 1 });
    s.clock.advance(2_000);
    try {
      await sweepDueHolds(s.app.context, pino({ level: "silent" }));
    } finally {
      s.clock.advance(-2_000);
    }
    expectHttpError(await consume({ transaction_id: tx }), "freeze_auto_unfrozen");
  });
});

describe("POST /v1/billing/unfreeze", () => {
  const unfreeze = (body: Record<string, unknown>) => http.post("/v1/billing/unfreeze", body);

  it.each<Case>([
    {
      name: "no transaction_id",
      body: () => ({}),
      code: "transaction_id_required",
      message: "transaction_id is required.",
      details: field("transaction_id"),
    },
    {
      name: "malformed transaction_id",
      body: () => ({ transaction_id: "a/b" }),
      code: "invalid_argument",
      message: ID_MESSAGE("transaction_id"),
      details: field("transaction_id"),
    },
    { name: "unknown hold", body: () => ({ transaction_id: uid("none") }), code: "no_unfreezable_records" },
  ])("$name → $code", (c) => check("/v1/billing/unfreeze", c));

  it("a consumed hold → no_unfreezable_records; another customer's → customer_scope_mismatch", async () => {
    const consumed = await hold();
    ok(await http.post("/v1/billing/consume", { transaction_id: consumed }));
    expectHttpError(await unfreeze({ transaction_id: consumed }), "no_unfreezable_records");
    const tx = await hold();
    expectHttpError(await unfreeze({ transaction_id: tx, customer_id: "someone-else" }), "customer_scope_mismatch", {
      details: { customer_id: "someone-else" },
    });
  });
});
