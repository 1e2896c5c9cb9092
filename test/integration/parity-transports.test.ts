import { fromBinary, fromJson, type JsonObject, type JsonValue, toBinary, toJson } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CATALOG, type ErrorCode } from "../../src/errors/catalog.js";
import { descriptorRegistry } from "../../src/grpc/descriptors.js";
import { decodeStatusDetails, ERROR_DOMAIN } from "../../src/grpc/status-details.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

// The same call over gRPC and over HTTP, as a client in another language makes it: the gRPC side
// builds each request from the protos' descriptors in proto3 JSON (int64 as strings, enums by
// name or number), as grpcurl or a generated Python/Go client would, and may append raw bytes (an
// unknown field, a value no generated client would encode); the HTTP side sends Velobase's JSON
// with fetch. Each case names the catalogue code, the message and the facts both must answer;
// where a side answers otherwise (Velobase's wire format, as the README describes it, or the words
// of HTTP's schema check, which the HTTP suites pin), that side's own answer, with the reason.

let s: TestServer;
let grpc: ForeignGrpc;

// ---------------------------------------------------------------------------------------------
// A gRPC client that knows only the protos (the descriptor set), and a plain HTTP one.

const identity = (bytes: Buffer): Buffer => bytes;

interface GrpcCall {
  /** `Service/Method` of velobase.billing.v1. */
  readonly method: string;
  /** The request in proto3 JSON. */
  readonly json: JsonValue;
  /** Bytes appended to the encoded request (fields no generated client would send). */
  readonly extra?: Buffer;
  /** The key presented; the server's write key when undefined, none when null. */
  readonly key?: string | null;
}

interface HttpCall {
  readonly method: "GET" | "POST" | "DELETE";
  readonly path: string;
  readonly body?: unknown;
  /** The body's text as is (numbers JSON.stringify cannot write). */
  readonly raw?: string;
  readonly key?: string | null;
  readonly headers?: Record<string, string>;
}

interface Answer {
  readonly ok: boolean;
  /** The success body (proto3 JSON over gRPC), or the error as a client sees it. */
  readonly body: JsonObject;
}

class ForeignGrpc {
  private readonly client: Client;

  constructor(port: number) {
    this.client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  }

  private prepare(call: GrpcCall) {
    const [service, name] = call.method.split("/");
    const registry = descriptorRegistry();
    const method = registry.getService(`velobase.billing.v1.${service}`)?.methods.find((m) => m.name === name);
    if (!method) throw new Error(`no method ${call.method}`);
    const request = Buffer.from(toBinary(method.input, fromJson(method.input, call.json, { registry })));
    const metadata = new Metadata();
    const key = call.key === undefined ? s.apiKey : call.key;
    if (key !== null) metadata.set("authorization", `Bearer ${key}`);
    const decode = (bytes: Buffer) =>
      toJson(method.output, fromBinary(method.output, bytes), { registry, alwaysEmitImplicit: true }) as JsonObject;
    return {
      path: `/velobase.billing.v1.${service}/${name}`,
      bytes: Buffer.concat([request, call.extra ?? Buffer.alloc(0)]),
      metadata,
      decode,
    };
  }

  unary(call: GrpcCall): Promise<Answer> {
    const { path, bytes, metadata, decode } = this.prepare(call);
    return new Promise((resolve) =>
      this.client.makeUnaryRequest(path, identity, identity, bytes, metadata, (error, response) =>
        resolve(error ? { ok: false, body: grpcError(error) } : { ok: true, body: decode(response as Buffer) }),
      ),
    );
  }

  /** A server stream's first message, or its error; the stream is then cancelled. */
  async first(call: GrpcCall): Promise<Answer> {
    const answers = await this.take(call, 1);
    return answers[0] ?? { ok: false, body: {} };
  }

  /** A server stream's first `count` messages (or its error, alone); the stream is then cancelled. */
  take(call: GrpcCall, count: number): Promise<Answer[]> {
    const { path, bytes, metadata, decode } = this.prepare(call);
    const answers: Answer[] = [];
    return new Promise((resolve) => {
      const stream = this.client.makeServerStreamRequest(path, identity, identity, bytes, metadata);
      stream.on("data", (message: Buffer) => {
        answers.push({ ok: true, body: decode(message) });
        if (answers.length < count) return;
        resolve(answers);
        stream.cancel();
      });
      stream.on("error", (error: ServiceError) => {
        if (answers.length < count) resolve([{ ok: false, body: grpcError(error) }]);
      });
    });
  }

  close(): void {
    this.client.close();
  }
}

/** A gRPC failure as a client in any language reads it: status, message, and the status details. */
function grpcError(error: ServiceError): JsonObject {
  const { detail, info, retry } = decodeStatusDetails(error.metadata);
  return {
    status: status[error.code] ?? String(error.code),
    statusMessage: error.details,
    code: detail?.code ?? null,
    type: detail?.type ?? null,
    message: detail?.message ?? null,
    reason: info?.reason ?? null,
    domain: info?.domain ?? null,
    details: info?.metadata ?? {},
    retryable: retry !== undefined,
  };
}

async function sendHttp(call: HttpCall): Promise<Answer> {
  const key = call.key === undefined ? s.apiKey : call.key;
  const headers: Record<string, string> = { ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...call.headers };
  const body = call.raw ?? (call.body === undefined ? undefined : JSON.stringify(call.body));
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${s.httpUrl}${call.path}`, { method: call.method, headers, ...(body === undefined ? {} : { body }) });
  const json = (await response.json()) as JsonObject;
  if (response.status === 200) return { ok: true, body: json };
  const error = json.error as JsonObject;
  const details = Object.fromEntries(Object.entries(error.details as JsonObject).map(([k, v]) => [k, String(v)]));
  return {
    ok: false,
    body: {
      status: response.status,
      code: error.code ?? null,
      type: error.type ?? null,
      message: error.message ?? null,
      details,
      retryable: error.retryable ?? null,
      requestIdEchoed: error.request_id === response.headers.get("x-request-id"),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// What a failure must be on each side.

interface Expected {
  readonly code: ErrorCode;
  readonly message: string;
  /** The error's facts (ErrorInfo.metadata; HTTP's details, compared as text). */
  readonly details?: Readonly<Record<string, string>>;
}

interface ErrorCase {
  readonly name: string;
  readonly grpc: () => GrpcCall;
  readonly http: () => HttpCall;
  /** Both sides, unless a side's own answer is given below (a function when it names a fixture made in beforeAll). */
  readonly expected: Expected | (() => Expected);
  readonly grpcAnswer?: Partial<Expected>;
  readonly httpAnswer?: Partial<Expected>;
  /** Why a side answers otherwise: required with grpcAnswer or httpAnswer. */
  readonly why?: string;
}

function expectGrpcError(answer: Answer, e: Expected): void {
  const spec = ERROR_CATALOG[e.code];
  expect(answer).toEqual({
    ok: false,
    body: {
      status: spec.grpcStatus,
      statusMessage: e.message,
      code: e.code,
      type: spec.type,
      message: e.message,
      reason: e.code,
      domain: ERROR_DOMAIN,
      details: e.details ?? {},
      retryable: spec.retryable,
    },
  });
}

function expectHttpError(answer: Answer, e: Expected): void {
  const spec = ERROR_CATALOG[e.code];
  expect(answer).toEqual({
    ok: false,
    body: {
      status: spec.httpStatus,
      code: e.code,
      type: spec.type,
      message: e.message,
      details: e.details ?? {},
      retryable: spec.httpStatus >= 500 || spec.httpStatus === 429,
      requestIdEchoed: true,
    },
  });
}

async function checkCase(c: ErrorCase): Promise<void> {
  if ((c.grpcAnswer || c.httpAnswer) && !c.why) throw new Error(`${c.name}: a side that answers otherwise needs its reason`);
  const expected = typeof c.expected === "function" ? c.expected() : c.expected;
  const call = c.grpc();
  // WatchEvents is a stream: a refused one fails before its first message.
  const answer = call.method === "EventService/WatchEvents" ? await grpc.first(call) : await grpc.unary(call);
  expectGrpcError(answer, { ...expected, ...c.grpcAnswer });
  expectHttpError(await sendHttp(c.http()), { ...expected, ...c.httpAnswer });
}

// ---------------------------------------------------------------------------------------------
// Fixtures: one customer with 100 in "default" and 50 in "paid", a deduct of 5 and an open hold
// of 5 (both from "default"), so 140 available (50 in "paid"); a deposit of another customer to
// void; a slot pool of 2 with one claim; an entitlement; an alert.

const RICH = "rich";
const VOIDEE = "voidee";
const DEDUCT = "deduct-1";
const HOLD = "hold-1";
let recordId = "";
let readKey = "";
let otherProjectKey = "";
let revokedKey = "";

const LONG_ID = "a".repeat(129);
const BEYOND_YEAR_9999 = 253402300800n;

beforeAll(async () => {
  s = await startTestServer();
  grpc = new ForeignGrpc(s.app.port);
  const http = (path: string, body: unknown) => sendHttp({ method: "POST", path, body });
  const setUp = [
    await http("/v1/customers/deposit", { customer_id: RICH, amount: 100 }),
    await grpc.unary({ method: "BillingService/Deposit", json: { customerId: RICH, amount: "50", creditType: "paid" } }),
    await http("/v1/billing/deduct", { customer_id: RICH, transaction_id: DEDUCT, amount: 5 }),
    await grpc.unary({ method: "BillingService/Freeze", json: { customerId: RICH, transactionId: HOLD, amount: "5" } }),
    await http("/v1/slot/grant", { customer_id: RICH, wallet: "ip", amount: 2 }),
    await http("/v1/slot/claim", { customer_id: RICH, wallet: "ip", resource_id: "r1" }),
    await http("/v1/entitlement/set", { customer_id: RICH, feature_key: "model", value: "gpt" }),
    await http("/v1/alerts", { customer_id: RICH, threshold: 10 }),
  ];
  const voided = await http("/v1/customers/deposit", { customer_id: VOIDEE, amount: 10 });
  for (const answer of [...setUp, voided]) expect(answer.ok, JSON.stringify(answer.body)).toBe(true);
  recordId = String(voided.body.record_id);
  readKey = (await s.createKey({ scope: "read" })).key;
  otherProjectKey = (await s.createKey({ project: await s.createProject() })).key;
  const revoked = await s.createKey();
  await s.revokeKey(revoked.prefix);
  revokedKey = revoked.key;
});
afterAll(async () => {
  grpc?.close();
  await s?.stop();
});

// ---------------------------------------------------------------------------------------------
// Encoding what generated clients never send.

function varint(value: bigint): Buffer {
  const bytes: number[] = [];
  let rest = BigInt.asUintN(64, value);
  do {
    const low = Number(rest & 0x7fn);
    rest >>= 7n;
    bytes.push(rest > 0n ? low | 0x80 : low);
  } while (rest > 0n);
  return Buffer.from(bytes);
}

/** A varint field, e.g. an int64 of 2^63 (read as -2^63) or a field number the proto lacks. */
const varintField = (field: number, value: bigint) => Buffer.concat([varint(BigInt(field << 3)), varint(value)]);

/** A google.protobuf.Timestamp field with these seconds and nanos, valid or not. */
function timestampField(field: number, seconds: bigint, nanos = 0): Buffer {
  const inner = Buffer.concat([varintField(1, seconds), varintField(2, BigInt(nanos))]);
  return Buffer.concat([varint(BigInt((field << 3) | 2)), varint(BigInt(inner.length)), inner]);
}

// ---------------------------------------------------------------------------------------------
// Messages. Where HTTP's schema check finds the fault first it says it in the schema's words; the
// code and the field are the catalogue's on both sides. These words are pinned by the HTTP suites
// (http-errors, http-edge, http-slots, http-entitlements, http-reversals), so they are left.

const SCHEMA_WORDS = "HTTP's schema check words the same fault its own way (same code and field)";
const idWords = (field: string) => `${field} must be 1-128 characters of [A-Za-z0-9_.:@-].`;
const field = (name: string) => ({ field: name });
const AMOUNT_MAX = "1000000000000000";

const post = (path: string, body: unknown, key?: string | null): HttpCall => ({
  method: "POST",
  path,
  body,
  ...(key === undefined ? {} : { key }),
});
const get = (path: string, key?: string | null): HttpCall => ({ method: "GET", path, ...(key === undefined ? {} : { key }) });
const rpc = (method: string, json: JsonValue, extra?: Buffer, key?: string | null): GrpcCall => ({
  method,
  json,
  ...(extra === undefined ? {} : { extra }),
  ...(key === undefined ? {} : { key }),
});

/** The id cases every required id of a write shares (missing, empty, whitespace, too long, not ASCII). */
function idCases(
  operation: string,
  name: string,
  required: ErrorCode,
  grpcWith: (id: string | undefined) => GrpcCall,
  httpWith: (id: string | undefined) => HttpCall,
): ErrorCase[] {
  const malformed = { code: "invalid_argument" as const, message: idWords(name), details: field(name) };
  const cases: Array<[string, string | undefined, Expected]> = [
    ["missing", undefined, { code: required, message: `${name} is required.`, details: field(name) }],
    ["empty", "", { code: required, message: `${name} is required.`, details: field(name) }],
    ["whitespace only", "   ", malformed],
    ["padded with spaces", " c1 ", malformed],
    ["129 characters", LONG_ID, malformed],
    ["not ASCII", "cüst", malformed],
    ["with a tab", "a\tb", malformed],
  ];
  return cases.map(([label, id, expected]) => ({
    name: `${operation}: ${name} ${label}`,
    grpc: () => grpcWith(id),
    http: () => httpWith(id),
    expected,
  }));
}

const withId = (key: string, id: string | undefined) => (id === undefined ? {} : { [key]: id });

// ---------------------------------------------------------------------------------------------

describe("Deposit", () => {
  const g = (json: JsonObject, extra?: Buffer) => rpc("BillingService/Deposit", json, extra);
  const h = (body: unknown) => post("/v1/customers/deposit", body);
  const hRaw = (raw: string): HttpCall => ({ method: "POST", path: "/v1/customers/deposit", raw });
  const base = { customerId: "c1", amount: "1" };
  const hBase = { customer_id: "c1", amount: 1 };
  const cases: ErrorCase[] = [
    ...idCases(
      "Deposit",
      "customer_id",
      "customer_id_required",
      (id) => g({ ...withId("customerId", id), amount: "10" }),
      (id) => h({ ...withId("customer_id", id), amount: 10 }),
    ),
    {
      name: "amount missing",
      grpc: () => g({ customerId: "c1" }),
      http: () => h({ customer_id: "c1" }),
      expected: { code: "amount_must_be_positive", message: "amount must be a positive integer.", details: field("amount") },
      httpAnswer: { message: "amount is required." },
      why: "proto3 cannot tell a missing amount from 0; JSON can",
    },
    ...[
      ["0", 0],
      ["-1", -1],
    ].map(
      ([text, number]): ErrorCase => ({
        name: `amount ${text}`,
        grpc: () => g({ customerId: "c1", amount: String(text) }),
        http: () => h({ customer_id: "c1", amount: number }),
        expected: { code: "amount_must_be_positive", message: "amount must be a positive integer.", details: field("amount") },
      }),
    ),
    ...[
      ["10^15 + 1", "1000000000000001"],
      ["2^53 + 1 (beyond JSON's safe integers)", "9007199254740993"],
      ["2^63 - 1", "9223372036854775807"],
    ].map(
      ([label, digits]): ErrorCase => ({
        name: `amount ${label}`,
        grpc: () => g({ customerId: "c1", amount: String(digits) }),
        http: () => hRaw(`{"customer_id": "c1", "amount": ${digits}}`),
        expected: { code: "invalid_argument", message: `amount must be at most ${AMOUNT_MAX}.`, details: field("amount") },
      }),
    ),
    {
      name: "amount 2^63",
      grpc: () => g({ customerId: "c1" }, varintField(2, 1n << 63n)),
      http: () => hRaw('{"customer_id": "c1", "amount": 9223372036854775808}'),
      expected: { code: "invalid_argument", message: `amount must be at most ${AMOUNT_MAX}.`, details: field("amount") },
      grpcAnswer: { code: "amount_must_be_positive", message: "amount must be a positive integer." },
      why: "an int64 cannot hold 2^63: generated clients refuse to encode it, and hand-made bytes arrive as -2^63, not positive",
    },
    {
      name: "expires_at in the past",
      grpc: () => g({ ...base, expiresAt: "2020-01-01T00:00:00Z" }),
      http: () => h({ ...hBase, expires_at: "2020-01-01T00:00:00Z" }),
      expected: { code: "invalid_expires_at", message: "expires_at must be in the future.", details: field("expires_at") },
    },
    {
      name: "expires_at now (the test clock's 2026-01-01)",
      grpc: () => g({ ...base, expiresAt: "2026-01-01T00:00:00Z" }),
      http: () => h({ ...hBase, expires_at: "2026-01-01" }),
      expected: { code: "invalid_expires_at", message: "expires_at must be in the future.", details: field("expires_at") },
    },
    {
      name: "expires_at before starts_at",
      grpc: () => g({ ...base, startsAt: "2031-01-01T00:00:00Z", expiresAt: "2030-01-01T00:00:00Z" }),
      http: () => h({ ...hBase, starts_at: "2031-01-01T08:00:00+08:00", expires_at: "2030-01-01" }),
      expected: { code: "invalid_datetime_range", message: "expires_at must be after starts_at.", details: field("expires_at") },
    },
    {
      name: "starts_at not a time (year 10000; month 13)",
      grpc: () => g(base, timestampField(6, BEYOND_YEAR_9999)),
      http: () => h({ ...hBase, starts_at: "2026-13-01" }),
      expected: { code: "invalid_starts_at", message: "starts_at is not a valid timestamp.", details: field("starts_at") },
    },
    {
      name: "expires_at not a time (nanos 10^9; ten fraction digits)",
      grpc: () => g(base, timestampField(7, 1_900_000_000n, 1_000_000_000)),
      http: () => h({ ...hBase, expires_at: "2030-01-01T00:00:00.9999999999Z" }),
      expected: { code: "invalid_expires_at", message: "expires_at is not a valid timestamp.", details: field("expires_at") },
    },
    {
      name: "credit type not lower case",
      grpc: () => g({ ...base, creditType: "Paid" }),
      http: () => h({ ...hBase, wallet: "Paid" }),
      expected: {
        code: "invalid_credit_types",
        message: 'credit_type must be 1-64 characters of [a-z0-9_.-], got "Paid".',
        details: field("credit_type"),
      },
      httpAnswer: { message: "Credit types must be 1-64 characters of [a-z0-9_.-].", details: field("wallet") },
      why: `${SCHEMA_WORDS}; HTTP's field is Velobase's name, wallet`,
    },
    {
      name: "source with a space",
      grpc: () => g({ ...base, source: "a b" }),
      http: () => h({ ...hBase, source: "a b" }),
      expected: { code: "invalid_argument", message: "source must be 1-64 characters of [A-Za-z0-9_.:@-].", details: field("source") },
    },
    ...[
      ["padded", " k"],
      ["129 characters", LONG_ID],
    ].map(
      ([label, key]): ErrorCase => ({
        name: `idempotency_key ${label}`,
        grpc: () => g({ ...base, idempotencyKey: String(key) }),
        http: () => h({ ...hBase, idempotency_key: key }),
        expected: { code: "invalid_argument", message: idWords("idempotency_key"), details: field("idempotency_key") },
      }),
    ),
    ...[
      ["name", 255],
      ["email", 255],
      ["description", 1024],
    ].map(
      ([name, max]): ErrorCase => ({
        name: `${name} over ${max} characters`,
        grpc: () => g({ ...base, [String(name)]: "n".repeat(Number(max) + 1) }),
        http: () => h({ ...hBase, [String(name)]: "n".repeat(Number(max) + 1) }),
        expected: { code: "invalid_argument", message: `${name} must be at most ${max} characters.`, details: field(String(name)) },
      }),
    ),
    ...(
      [
        ["33 keys", Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"])), "metadata holds at most 32 keys."],
        ["a key of 65 characters", { ["k".repeat(65)]: "v" }, "metadata keys must be 1-64 characters."],
        ["an empty key", { "": "v" }, "metadata keys must be 1-64 characters."],
        ["a value of 1025 characters", { k: "v".repeat(1025) }, "metadata values must be at most 1024 characters."],
      ] as const
    ).map(
      ([label, metadata, message]): ErrorCase => ({
        name: `metadata with ${label}`,
        grpc: () => g({ ...base, metadata }),
        http: () => h({ ...hBase, metadata }),
        expected: { code: "invalid_argument", message, details: field("metadata") },
      }),
    ),
  ];
  it.each(cases)("$name", checkCase);
});

/** The failures Deduct and Freeze share. */
function spendCases(method: "Deduct" | "Freeze"): ErrorCase[] {
  const path = `/v1/billing/${method.toLowerCase()}`;
  const g = (json: JsonObject, key?: string | null) => rpc(`BillingService/${method}`, json, undefined, key);
  const h = (body: unknown, key?: string | null) => post(path, body, key);
  const tx = () => uid("tx");
  const spend = (amount: string, extra: JsonObject = {}) => ({ customerId: RICH, transactionId: tx(), amount, ...extra });
  const hSpend = (amount: number, extra: Record<string, unknown> = {}) => ({ customer_id: RICH, transaction_id: tx(), amount, ...extra });
  const typesOf33 = Array.from({ length: 33 }, (_, i) => `w${i}`);
  return [
    ...idCases(
      method,
      "customer_id",
      "customer_id_required",
      (id) => g({ ...withId("customerId", id), transactionId: tx(), amount: "1" }),
      (id) => h({ ...withId("customer_id", id), transaction_id: tx(), amount: 1 }),
    ),
    ...idCases(
      method,
      "transaction_id",
      "transaction_id_required",
      (id) => g({ customerId: RICH, ...withId("transactionId", id), amount: "1" }),
      (id) => h({ customer_id: RICH, ...withId("transaction_id", id), amount: 1 }),
    ),
    {
      name: `${method}: amount -5`,
      grpc: () => g(spend("-5")),
      http: () => h(hSpend(-5)),
      expected: { code: "amount_must_be_positive", message: "amount must be a positive integer.", details: field("amount") },
    },
    {
      name: `${method}: amount 2^63 - 1`,
      grpc: () => g(spend("9223372036854775807")),
      http: () => ({ method: "POST", path, raw: `{"customer_id": "${RICH}", "transaction_id": "${tx()}", "amount": 9223372036854775807}` }),
      expected: { code: "invalid_argument", message: `amount must be at most ${AMOUNT_MAX}.`, details: field("amount") },
    },
    {
      name: `${method}: an unknown customer`,
      grpc: () => g({ ...spend("1"), customerId: "nobody" }),
      http: () => h({ ...hSpend(1), customer_id: "nobody" }),
      expected: { code: "customer_not_found", message: "The customer does not exist.", details: { customer_id: "nobody" } },
    },
    {
      name: `${method}: another project's customer`,
      grpc: () => g(spend("1"), otherProjectKey),
      http: () => h(hSpend(1), otherProjectKey),
      expected: { code: "customer_not_found", message: "The customer does not exist.", details: { customer_id: RICH } },
    },
    {
      name: `${method}: more than every wallet holds`,
      grpc: () => g(spend("100000")),
      http: () => h(hSpend(100000)),
      expected: {
        code: "insufficient_balance",
        message: "The customer's available balance is insufficient.",
        details: { requested: "100000", available: "140", wallet: "*" },
      },
    },
    {
      name: `${method}: more than the selected wallet holds`,
      grpc: () => g(spend("60", { creditTypes: ["paid"] })),
      http: () => h(hSpend(60, { credit_types: ["paid"] })),
      expected: {
        code: "insufficient_balance_in_selected_credit_types",
        message: "The available balance in the selected credit types is insufficient.",
        details: { requested: "60", available: "50", wallet: "paid" },
      },
    },
    {
      name: `${method}: an unknown business type (99; "FOO")`,
      grpc: () => g(spend("1", { businessType: 99 })),
      http: () => h(hSpend(1, { business_type: "FOO" })),
      expected: { code: "invalid_argument", message: "business_type is not a known value.", details: field("business_type") },
    },
    {
      name: `${method}: a credit type not lower case`,
      grpc: () => g(spend("1", { creditTypes: ["Paid"] })),
      http: () => h(hSpend(1, { credit_types: ["Paid"] })),
      expected: {
        code: "invalid_credit_types",
        message: 'credit_types must be 1-64 characters of [a-z0-9_.-], got "Paid".',
        details: field("credit_types"),
      },
      httpAnswer: { message: "Credit types must be 1-64 characters of [a-z0-9_.-]." },
      why: SCHEMA_WORDS,
    },
    {
      name: `${method}: 33 credit types`,
      grpc: () => g(spend("1", { creditTypes: typesOf33 })),
      http: () => h(hSpend(1, { credit_types: typesOf33 })),
      expected: { code: "invalid_credit_types", message: "At most 32 credit types.", details: field("credit_types") },
    },
    {
      name: `${method}: a read key`,
      grpc: () => g(spend("1"), readKey),
      http: () => h(hSpend(1), readKey),
      expected: {
        code: "permission_denied",
        message: "The API key's scope does not allow this call.",
        details: { required_scope: "write" },
      },
    },
    {
      name: `${method}: no key`,
      grpc: () => g(spend("1"), null),
      http: () => h(hSpend(1), null),
      expected: { code: "missing_api_key", message: "An API key is required." },
    },
    {
      name: `${method}: an unknown key`,
      grpc: () => g(spend("1"), "vb_test_unknown"),
      http: () => h(hSpend(1), "vb_test_unknown"),
      expected: { code: "invalid_api_key", message: "The API key is not valid." },
    },
    {
      name: `${method}: a revoked key`,
      grpc: () => g(spend("1"), revokedKey),
      http: () => h(hSpend(1), revokedKey),
      expected: { code: "api_key_revoked", message: "The API key has been revoked." },
    },
  ];
}

describe("Deduct", () => {
  it.each(spendCases("Deduct"))("$name", checkCase);
});

describe("Freeze", () => {
  const g = (json: JsonObject) => rpc("BillingService/Freeze", { customerId: RICH, transactionId: uid("tx"), amount: "1", ...json });
  const h = (body: Record<string, unknown>) =>
    post("/v1/billing/freeze", { customer_id: RICH, transaction_id: uid("tx"), amount: 1, ...body });
  const ttl = (name: string, max: number): Expected => ({
    code: "invalid_auto_settlement_ttl",
    message: `${name} must be between 1 and ${max}.`,
    details: field(name),
  });
  const cases: ErrorCase[] = [
    ...spendCases("Freeze"),
    {
      name: "Freeze: both auto-settlements",
      grpc: () => g({ unfreezeAfterSeconds: "5", consumeAfterSeconds: "5" }),
      http: () => h({ unfreeze_after_seconds: 5, consume_after_seconds: 5 }),
      expected: { code: "invalid_auto_settlement", message: ERROR_CATALOG.invalid_auto_settlement.message },
    },
    {
      name: "Freeze: unfreeze_after_seconds 0",
      grpc: () => g({ unfreezeAfterSeconds: "0" }),
      http: () => h({ unfreeze_after_seconds: 0 }),
      expected: ttl("unfreeze_after_seconds", 2592000),
    },
    {
      name: "Freeze: consume_after_seconds -1",
      grpc: () => g({ consumeAfterSeconds: "-1" }),
      http: () => h({ consume_after_seconds: -1 }),
      expected: ttl("consume_after_seconds", 604800),
    },
    {
      name: "Freeze: unfreeze_after_seconds 2592001",
      grpc: () => g({ unfreezeAfterSeconds: "2592001" }),
      http: () => h({ unfreeze_after_seconds: 2592001 }),
      expected: ttl("unfreeze_after_seconds", 2592000),
    },
    {
      name: "Freeze: unfreeze_after_seconds 2^63 - 1",
      grpc: () => g({ unfreezeAfterSeconds: "9223372036854775807" }),
      http: () => ({
        method: "POST",
        path: "/v1/billing/freeze",
        raw: `{"customer_id": "${RICH}", "transaction_id": "${uid("tx")}", "amount": 1, "unfreeze_after_seconds": 9223372036854775807}`,
      }),
      expected: ttl("unfreeze_after_seconds", 2592000),
    },
  ];
  it.each(cases)("$name", checkCase);
});

describe("Consume and Unfreeze", () => {
  const consume = (json: JsonObject, key?: string | null) => rpc("BillingService/Consume", json, undefined, key);
  const hConsume = (body: unknown, key?: string | null) => post("/v1/billing/consume", body, key);
  const unfreeze = (json: JsonObject, key?: string | null) => rpc("BillingService/Unfreeze", json, undefined, key);
  const hUnfreeze = (body: unknown, key?: string | null) => post("/v1/billing/unfreeze", body, key);
  const noHold: Expected = { code: "no_consumable_freeze_records", message: ERROR_CATALOG.no_consumable_freeze_records.message };
  const nothingFrozen: Expected = { code: "no_unfreezable_records", message: ERROR_CATALOG.no_unfreezable_records.message };
  const cases: ErrorCase[] = [
    {
      name: "Consume: transaction_id missing",
      grpc: () => consume({}),
      http: () => hConsume({}),
      expected: { code: "transaction_id_required", message: "transaction_id is required.", details: field("transaction_id") },
    },
    {
      name: "Consume: transaction_id empty",
      grpc: () => consume({ transactionId: "" }),
      http: () => hConsume({ transaction_id: "" }),
      expected: { code: "transaction_id_required", message: "transaction_id is required.", details: field("transaction_id") },
    },
    {
      name: "Consume: an unknown hold",
      grpc: () => consume({ transactionId: "no-such-hold" }),
      http: () => hConsume({ transaction_id: "no-such-hold" }),
      expected: noHold,
    },
    {
      name: "Consume: a deduct's transaction",
      grpc: () => consume({ transactionId: DEDUCT }),
      http: () => hConsume({ transaction_id: DEDUCT }),
      expected: noHold,
    },
    {
      name: "Consume: another project's hold",
      grpc: () => consume({ transactionId: HOLD }, otherProjectKey),
      http: () => hConsume({ transaction_id: HOLD }, otherProjectKey),
      expected: noHold,
    },
    {
      name: "Consume: actual_amount -1",
      grpc: () => consume({ transactionId: HOLD, actualAmount: "-1" }),
      http: () => hConsume({ transaction_id: HOLD, actual_amount: -1 }),
      expected: {
        code: "actual_amount_must_be_non_negative",
        message: "actual_amount must not be negative.",
        details: field("actual_amount"),
      },
    },
    {
      name: "Consume: actual_amount 10^15 + 1",
      grpc: () => consume({ transactionId: HOLD, actualAmount: "1000000000000001" }),
      http: () => hConsume({ transaction_id: HOLD, actual_amount: 1000000000000001 }),
      expected: { code: "invalid_argument", message: `actual_amount must be at most ${AMOUNT_MAX}.`, details: field("actual_amount") },
    },
    {
      name: "Consume: actual_amount 2^63",
      grpc: () => rpc("BillingService/Consume", { transactionId: HOLD }, varintField(3, 1n << 63n)),
      http: () => ({
        method: "POST",
        path: "/v1/billing/consume",
        raw: `{"transaction_id": "${HOLD}", "actual_amount": 9223372036854775808}`,
      }),
      expected: { code: "invalid_argument", message: `actual_amount must be at most ${AMOUNT_MAX}.`, details: field("actual_amount") },
      grpcAnswer: { code: "actual_amount_must_be_non_negative", message: "actual_amount must not be negative." },
      why: "an int64 cannot hold 2^63: hand-made bytes arrive as -2^63",
    },
    {
      name: "Consume: above the hold without overage",
      grpc: () => consume({ transactionId: HOLD, actualAmount: "6", allowOverage: false }),
      http: () => hConsume({ transaction_id: HOLD, actual_amount: 6, allow_overage: false }),
      expected: {
        code: "actual_amount_exceeds_frozen_amount",
        message: ERROR_CATALOG.actual_amount_exceeds_frozen_amount.message,
        details: { requested: "6", frozen: "5" },
      },
    },
    {
      name: "Consume: another customer named",
      grpc: () => consume({ transactionId: HOLD, customerId: "someone-else" }),
      http: () => hConsume({ transaction_id: HOLD, customer_id: "someone-else" }),
      expected: {
        code: "customer_scope_mismatch",
        message: ERROR_CATALOG.customer_scope_mismatch.message,
        details: { customer_id: "someone-else" },
      },
    },
    {
      name: "Consume: customer_id whitespace only",
      grpc: () => consume({ transactionId: HOLD, customerId: " " }),
      http: () => hConsume({ transaction_id: HOLD, customer_id: " " }),
      expected: { code: "invalid_argument", message: idWords("customer_id"), details: field("customer_id") },
    },
    {
      name: "Unfreeze: transaction_id missing",
      grpc: () => unfreeze({}),
      http: () => hUnfreeze({}),
      expected: { code: "transaction_id_required", message: "transaction_id is required.", details: field("transaction_id") },
    },
    {
      name: "Unfreeze: an unknown hold",
      grpc: () => unfreeze({ transactionId: "no-such-hold" }),
      http: () => hUnfreeze({ transaction_id: "no-such-hold" }),
      expected: nothingFrozen,
    },
    {
      name: "Unfreeze: a deduct's transaction",
      grpc: () => unfreeze({ transactionId: DEDUCT }),
      http: () => hUnfreeze({ transaction_id: DEDUCT }),
      expected: nothingFrozen,
    },
    {
      name: "Unfreeze: another project's hold",
      grpc: () => unfreeze({ transactionId: HOLD }, otherProjectKey),
      http: () => hUnfreeze({ transaction_id: HOLD }, otherProjectKey),
      expected: nothingFrozen,
    },
    {
      name: "Unfreeze: another customer named",
      grpc: () => unfreeze({ transactionId: HOLD, customerId: "x" }),
      http: () => hUnfreeze({ transaction_id: HOLD, customer_id: "x" }),
      expected: { code: "customer_scope_mismatch", message: ERROR_CATALOG.customer_scope_mismatch.message, details: { customer_id: "x" } },
    },
  ];
  it.each(cases)("$name", checkCase);
});

describe("Refund and VoidDeposit", () => {
  const refund = (json: JsonObject, key?: string | null) => rpc("BillingService/Refund", json, undefined, key);
  const hRefund = (body: unknown, key?: string | null) => post("/v1/billing/refund", body, key);
  const voidDeposit = (json: JsonObject, key?: string | null) => rpc("BillingService/VoidDeposit", json, undefined, key);
  const hVoid = (body: unknown, key?: string | null) => post("/v1/customers/deposit/void", body, key);
  const r = () => uid("refund");
  const v = () => uid("void");
  const notARecord: Expected = {
    code: "invalid_argument",
    message: "record_id must be a ledger entry id (a positive integer).",
    details: field("record_id"),
  };
  const cases: ErrorCase[] = [
    {
      name: "Refund: transaction_id missing",
      grpc: () => refund({ refundId: r() }),
      http: () => hRefund({ refund_id: r() }),
      expected: { code: "transaction_id_required", message: "transaction_id is required.", details: field("transaction_id") },
    },
    {
      name: "Refund: refund_id missing",
      grpc: () => refund({ transactionId: DEDUCT }),
      http: () => hRefund({ transaction_id: DEDUCT }),
      expected: { code: "invalid_argument", message: "refund_id is required.", details: field("refund_id") },
    },
    {
      name: "Refund: refund_id empty",
      grpc: () => refund({ transactionId: DEDUCT, refundId: "" }),
      http: () => hRefund({ transaction_id: DEDUCT, refund_id: "" }),
      expected: { code: "invalid_argument", message: "refund_id is required.", details: field("refund_id") },
    },
    {
      name: "Refund: amount 0",
      grpc: () => refund({ transactionId: DEDUCT, refundId: r(), amount: "0" }),
      http: () => hRefund({ transaction_id: DEDUCT, refund_id: r(), amount: 0 }),
      expected: { code: "amount_must_be_positive", message: "amount must be a positive integer.", details: field("amount") },
    },
    {
      name: "Refund: more than is left",
      grpc: () => refund({ transactionId: DEDUCT, refundId: r(), amount: "6" }),
      http: () => hRefund({ transaction_id: DEDUCT, refund_id: r(), amount: 6 }),
      expected: {
        code: "refund_exceeds_refundable",
        message: ERROR_CATALOG.refund_exceeds_refundable.message,
        details: { requested: "6", refundable: "5" },
      },
    },
    {
      name: "Refund: a hold still open",
      grpc: () => refund({ transactionId: HOLD, refundId: r() }),
      http: () => hRefund({ transaction_id: HOLD, refund_id: r() }),
      expected: {
        code: "transaction_not_refundable",
        message: ERROR_CATALOG.transaction_not_refundable.message,
        details: { transaction_id: HOLD, status: "FROZEN" },
      },
    },
    {
      name: "Refund: an unknown transaction",
      grpc: () => refund({ transactionId: "nope", refundId: r() }),
      http: () => hRefund({ transaction_id: "nope", refund_id: r() }),
      expected: { code: "transaction_not_found", message: "The transaction does not exist.", details: { transaction_id: "nope" } },
    },
    {
      name: "Refund: another project's transaction",
      grpc: () => refund({ transactionId: DEDUCT, refundId: r() }, otherProjectKey),
      http: () => hRefund({ transaction_id: DEDUCT, refund_id: r() }, otherProjectKey),
      expected: { code: "transaction_not_found", message: "The transaction does not exist.", details: { transaction_id: DEDUCT } },
    },
    {
      name: "Refund: another customer named",
      grpc: () => refund({ transactionId: DEDUCT, refundId: r(), customerId: "x" }),
      http: () => hRefund({ transaction_id: DEDUCT, refund_id: r(), customer_id: "x" }),
      expected: { code: "customer_scope_mismatch", message: ERROR_CATALOG.customer_scope_mismatch.message, details: { customer_id: "x" } },
    },
    {
      name: "VoidDeposit: customer_id missing",
      grpc: () => voidDeposit({ recordId: recordId, voidId: v() }),
      http: () => hVoid({ record_id: recordId, void_id: v() }),
      expected: { code: "customer_id_required", message: "customer_id is required.", details: field("customer_id") },
    },
    {
      name: "VoidDeposit: record_id missing",
      grpc: () => voidDeposit({ customerId: VOIDEE, voidId: v() }),
      http: () => hVoid({ customer_id: VOIDEE, void_id: v() }),
      expected: notARecord,
      httpAnswer: { message: "record_id is required." },
      why: "proto3 cannot tell a missing record_id from an empty one; JSON can",
    },
    ...["0", "abc"].map(
      (id): ErrorCase => ({
        name: `VoidDeposit: record_id "${id}"`,
        grpc: () => voidDeposit({ customerId: VOIDEE, recordId: id, voidId: v() }),
        http: () => hVoid({ customer_id: VOIDEE, record_id: id, void_id: v() }),
        expected: notARecord,
      }),
    ),
    {
      name: "VoidDeposit: record_id 2^64",
      grpc: () => voidDeposit({ customerId: VOIDEE, recordId: "18446744073709551616", voidId: v() }),
      http: () => hVoid({ customer_id: VOIDEE, record_id: "18446744073709551616", void_id: v() }),
      expected: notARecord,
    },
    {
      name: "VoidDeposit: void_id missing",
      grpc: () => voidDeposit({ customerId: VOIDEE, recordId: recordId }),
      http: () => hVoid({ customer_id: VOIDEE, record_id: recordId }),
      expected: { code: "invalid_argument", message: "void_id is required.", details: field("void_id") },
    },
    {
      name: "VoidDeposit: another customer's deposit",
      grpc: () => voidDeposit({ customerId: RICH, recordId: recordId, voidId: v() }),
      http: () => hVoid({ customer_id: RICH, record_id: recordId, void_id: v() }),
      expected: () => ({ code: "deposit_not_found", message: ERROR_CATALOG.deposit_not_found.message, details: { record_id: recordId } }),
    },
    {
      name: "VoidDeposit: another project's deposit",
      grpc: () => voidDeposit({ customerId: VOIDEE, recordId: recordId, voidId: v() }, otherProjectKey),
      http: () => hVoid({ customer_id: VOIDEE, record_id: recordId, void_id: v() }, otherProjectKey),
      expected: () => ({ code: "deposit_not_found", message: ERROR_CATALOG.deposit_not_found.message, details: { record_id: recordId } }),
    },
    {
      name: "VoidDeposit: more than the deposit has",
      grpc: () => voidDeposit({ customerId: VOIDEE, recordId: recordId, voidId: v(), amount: "11" }),
      http: () => hVoid({ customer_id: VOIDEE, record_id: recordId, void_id: v(), amount: 11 }),
      expected: () => ({
        code: "deposit_not_voidable",
        message: ERROR_CATALOG.deposit_not_voidable.message,
        details: { record_id: recordId, requested: "11", voidable: "10" },
      }),
    },
  ];
  it.each(cases)("$name", checkCase);
});

describe("GetCustomer and the ledger", () => {
  const customer = (json: JsonObject, extra?: Buffer, key?: string | null) => rpc("BillingService/GetCustomer", json, extra, key);
  const ledger = (json: JsonObject, extra?: Buffer) => rpc("BillingService/ListLedgerEntries", { customerId: RICH, ...json }, extra);
  const hLedger = (query: string) => get(`/v1/customers/${RICH}/ledger?${query}`);
  const notFound = (id: string): Expected => ({
    code: "customer_not_found",
    message: "The customer does not exist.",
    details: { customer_id: id },
  });
  const cases: ErrorCase[] = [
    ...idCases(
      "GetCustomer",
      "customer_id",
      "customer_id_required",
      (id) => customer(withId("customerId", id)),
      (id) => get(`/v1/customers/${encodeURIComponent(id ?? "")}`),
    ).filter((c) => !c.name.endsWith("missing")),
    {
      name: "GetCustomer: an unknown customer",
      grpc: () => customer({ customerId: "nobody" }),
      http: () => get("/v1/customers/nobody"),
      expected: notFound("nobody"),
    },
    {
      name: "GetCustomer: another project's customer",
      grpc: () => customer({ customerId: RICH }, undefined, otherProjectKey),
      http: () => get(`/v1/customers/${RICH}`, otherProjectKey),
      expected: notFound(RICH),
    },
    {
      name: "GetCustomer: as_of before the customer existed",
      grpc: () => customer({ customerId: RICH, asOf: "2001-01-01T00:00:00Z" }),
      http: () => get(`/v1/customers/${RICH}?as_of=2001-01-01T00:00:00Z`),
      expected: notFound(RICH),
    },
    {
      name: "GetCustomer: as_of not a time (year 10000; a word)",
      grpc: () => customer({ customerId: RICH }, timestampField(3, BEYOND_YEAR_9999)),
      http: () => get(`/v1/customers/${RICH}?as_of=yesterday`),
      expected: { code: "invalid_argument", message: "as_of is not a valid timestamp.", details: field("as_of") },
    },
    {
      name: "ledger: an unknown customer",
      grpc: () => ledger({ customerId: "nobody" }),
      http: () => get("/v1/customers/nobody/ledger"),
      expected: notFound("nobody"),
    },
    {
      name: "ledger: page size 101",
      grpc: () => ledger({ pageSize: 101 }),
      http: () => hLedger("limit=101"),
      expected: {
        code: "invalid_page_size",
        message: "page_size must be between 1 and 100.",
        details: { field: "page_size", value: "101" },
      },
      httpAnswer: { code: "invalid_limit", message: "limit must be between 1 and 100.", details: field("limit") },
      why: "catalogue: invalid_limit is Velobase's HTTP name for a page size out of range (its parameter is limit)",
    },
    {
      name: "ledger: an unknown operation type (99; FOO)",
      grpc: () => ledger({ operationTypes: [99] }),
      http: () => hLedger("operation_type=FOO"),
      expected: { code: "invalid_operation_type", message: ERROR_CATALOG.invalid_operation_type.message, details: field("operation_type") },
      grpcAnswer: { details: { field: "operation_types", value: "99" } },
      why: "each side names its own parameter (a repeated enum over gRPC, Velobase's one name over HTTP)",
    },
    {
      name: "ledger: a page token that is not one",
      grpc: () => ledger({ pageToken: "garbage" }),
      http: () => hLedger("cursor=garbage"),
      expected: { code: "invalid_page_token", message: "page_token is not valid for this request.", details: field("page_token") },
      httpAnswer: { message: "cursor is not valid for this request.", details: field("cursor") },
      why: "HTTP's parameter is Velobase's cursor, and the answer names it",
    },
    {
      name: "ledger: a credit type not lower case",
      grpc: () => ledger({ creditType: "Paid" }),
      http: () => hLedger("credit_type=Paid"),
      expected: {
        code: "invalid_credit_types",
        message: 'credit_type must be 1-64 characters of [a-z0-9_.-], got "Paid".',
        details: field("credit_type"),
      },
    },
    {
      name: "ledger: created_before before year 1",
      grpc: () => ledger({}, timestampField(6, -62135596801n)),
      http: () => hLedger("created_before=0000-12-31"),
      expected: { code: "invalid_argument", message: "created_before is not a valid timestamp.", details: field("created_before") },
    },
    {
      name: "ledger: transaction_id with a space",
      grpc: () => ledger({ transactionId: "a b" }),
      http: () => hLedger("transaction_id=a%20b"),
      expected: { code: "invalid_argument", message: idWords("transaction_id"), details: field("transaction_id") },
    },
    {
      name: "ledger: reverses_record_id not a number",
      grpc: () => ledger({ reversesRecordId: "abc" }),
      http: () => hLedger("reverses_record_id=abc"),
      expected: {
        code: "invalid_argument",
        message: "reverses_record_id must be a ledger entry id (a positive integer).",
        details: field("reverses_record_id"),
      },
    },
  ];
  it.each(cases)("$name", checkCase);
});

describe("alerts, events, slots and entitlements", () => {
  const alert = (method: string, json: JsonObject, key?: string | null) => rpc(`AlertService/${method}`, json, undefined, key);
  const slot = (method: string, json: JsonObject, extra?: Buffer) => rpc(`SlotService/${method}`, json, extra);
  const entitlement = (method: string, json: JsonObject, extra?: Buffer) => rpc(`EntitlementService/${method}`, json, extra);
  const typesUnknown = (value: string): Expected => ({
    code: "invalid_argument",
    message: "types holds an unknown value.",
    details: { field: "types", value },
  });
  const cases: ErrorCase[] = [
    {
      name: "SetAlert: threshold 0",
      grpc: () => alert("SetAlert", { customerId: RICH, threshold: "0" }),
      http: () => post("/v1/alerts", { customer_id: RICH, threshold: 0 }),
      expected: { code: "amount_must_be_positive", message: "threshold must be at least 1.", details: field("threshold") },
      httpAnswer: { message: "threshold must be a positive integer." },
      why: SCHEMA_WORDS,
    },
    {
      name: "SetAlert: threshold 10^15 + 1",
      grpc: () => alert("SetAlert", { customerId: RICH, threshold: "1000000000000001" }),
      http: () => post("/v1/alerts", { customer_id: RICH, threshold: 1000000000000001 }),
      expected: { code: "invalid_argument", message: `threshold must be at most ${AMOUNT_MAX}.`, details: field("threshold") },
    },
    {
      name: "SetAlert: customer_id missing",
      grpc: () => alert("SetAlert", { threshold: "1" }),
      http: () => post("/v1/alerts", { threshold: 1 }),
      expected: { code: "customer_id_required", message: "customer_id is required.", details: field("customer_id") },
    },
    {
      name: "SetAlert: another project's customer",
      grpc: () => alert("SetAlert", { customerId: RICH, threshold: "1" }, otherProjectKey),
      http: () => post("/v1/alerts", { customer_id: RICH, threshold: 1 }, otherProjectKey),
      expected: { code: "customer_not_found", message: "The customer does not exist.", details: { customer_id: RICH } },
    },
    {
      name: "SetAlert: a credit type not lower case",
      grpc: () => alert("SetAlert", { customerId: RICH, threshold: "1", creditType: "Paid" }),
      http: () => post("/v1/alerts", { customer_id: RICH, threshold: 1, credit_type: "Paid" }),
      expected: {
        code: "invalid_credit_types",
        message: 'credit_type must be 1-64 characters of [a-z0-9_.-], got "Paid".',
        details: field("credit_type"),
      },
    },
    {
      name: "SetAlert: a read key",
      grpc: () => alert("SetAlert", { customerId: RICH, threshold: "1" }, readKey),
      http: () => post("/v1/alerts", { customer_id: RICH, threshold: 1 }, readKey),
      expected: {
        code: "permission_denied",
        message: "The API key's scope does not allow this call.",
        details: { required_scope: "write" },
      },
    },
    {
      name: "ListAlerts: a page token that is not one",
      grpc: () => alert("ListAlerts", { pageToken: "garbage" }),
      http: () => get("/v1/alerts?cursor=garbage"),
      expected: { code: "invalid_page_token", message: "page_token is not valid for this request.", details: field("page_token") },
      httpAnswer: { message: "cursor is not valid for this request.", details: field("cursor") },
      why: "HTTP's parameter is Velobase's cursor, and the answer names it",
    },
    {
      name: "DeleteAlert: customer_id with a space",
      grpc: () => alert("DeleteAlert", { customerId: "a b" }),
      http: () => ({ method: "DELETE", path: "/v1/alerts/a%20b" }),
      expected: { code: "invalid_argument", message: idWords("customer_id"), details: field("customer_id") },
    },
    {
      name: "events: an unknown type",
      grpc: () => rpc("EventService/WatchEvents", { types: ["ledger.nope"] }),
      http: () => get("/v1/events?types=ledger.nope"),
      expected: typesUnknown("ledger.nope"),
    },
    {
      name: "events: a cursor that is not one",
      grpc: () => rpc("EventService/WatchEvents", { cursor: "garbage" }),
      http: () => get("/v1/events?cursor=garbage"),
      expected: { code: "invalid_page_token", message: "cursor is not an event cursor.", details: field("cursor") },
    },
    {
      name: "slots: GrantCapacity without a wallet",
      grpc: () => slot("GrantCapacity", { customerId: RICH, amount: "1" }),
      http: () => post("/v1/slot/grant", { customer_id: RICH, amount: 1 }),
      expected: { code: "wallet_required", message: "wallet is required.", details: field("wallet") },
    },
    {
      name: "slots: RevokeCapacity below what is in use",
      grpc: () => slot("RevokeCapacity", { customerId: RICH, wallet: "ip", amount: "2" }),
      http: () => post("/v1/slot/revoke", { customer_id: RICH, wallet: "ip", amount: 2 }),
      expected: {
        code: "slot_capacity_below_in_use",
        message: ERROR_CATALOG.slot_capacity_below_in_use.message,
        details: { requested: "2", capacity: "2", in_use: "1" },
      },
    },
    {
      name: "slots: Claim without a resource_id",
      grpc: () => slot("Claim", { customerId: RICH, wallet: "ip", resourceId: "" }),
      http: () => post("/v1/slot/claim", { customer_id: RICH, wallet: "ip", resource_id: "" }),
      expected: { code: "resource_id_required", message: "resource_id is required.", details: field("resource_id") },
    },
    {
      name: "slots: Claim beyond the capacity",
      grpc: () => slot("Claim", { customerId: RICH, wallet: "ip", resourceId: "r9", amount: "5" }),
      http: () => post("/v1/slot/claim", { customer_id: RICH, wallet: "ip", resource_id: "r9", amount: 5 }),
      expected: {
        code: "slot_insufficient_capacity",
        message: ERROR_CATALOG.slot_insufficient_capacity.message,
        details: { wallet: "ip", requested: "5", available: "1" },
      },
    },
    {
      name: "slots: Release of a resource holding nothing",
      grpc: () => slot("Release", { customerId: RICH, wallet: "ip", resourceId: "zzz" }),
      http: () => post("/v1/slot/release", { customer_id: RICH, wallet: "ip", resource_id: "zzz" }),
      expected: {
        code: "slot_holding_not_found",
        message: ERROR_CATALOG.slot_holding_not_found.message,
        details: { wallet: "ip", resource_id: "zzz" },
      },
    },
    {
      name: "slots: events of an unknown type (99; FOO)",
      grpc: () => slot("ListSlotEvents", { customerId: RICH, types: [99] }),
      http: () => get(`/v1/slot/events/${RICH}?types=FOO`),
      expected: typesUnknown("FOO"),
      grpcAnswer: { details: { field: "types", value: "99" } },
      why: "the value named is the one sent: an enum number over gRPC, a name over HTTP",
    },
    {
      name: "slots: events limit 0",
      grpc: () => slot("ListSlotEvents", { customerId: RICH, limit: 0 }),
      http: () => get(`/v1/slot/events/${RICH}?limit=0`),
      expected: { code: "invalid_limit", message: "limit must be between 1 and 100.", details: field("limit") },
      grpcAnswer: { details: { field: "limit", value: "0" } },
      why: "the operation's own check names the value; HTTP's schema check finds it first",
    },
    {
      name: "slots: events from_at not a time",
      grpc: () => slot("ListSlotEvents", { customerId: RICH }, timestampField(6, BEYOND_YEAR_9999)),
      http: () => get(`/v1/slot/events/${RICH}?from_at=nope`),
      expected: { code: "invalid_from_at", message: "from_at is not a valid timestamp.", details: field("from_at") },
    },
    {
      name: "entitlements: Set without a value",
      grpc: () => entitlement("SetEntitlement", { customerId: RICH, featureKey: "f" }),
      http: () => post("/v1/entitlement/set", { customer_id: RICH, feature_key: "f" }),
      expected: { code: "value_required", message: "value is required.", details: field("value") },
    },
    {
      name: "entitlements: Set on another project's customer",
      grpc: () => rpc("EntitlementService/SetEntitlement", { customerId: RICH, featureKey: "f", value: "v" }, undefined, otherProjectKey),
      http: () => post("/v1/entitlement/set", { customer_id: RICH, feature_key: "f", value: "v" }, otherProjectKey),
      expected: { code: "entitlement_customer_not_found", message: "The customer does not exist.", details: { customer_id: RICH } },
    },
    {
      name: "entitlements: valid_until before valid_from",
      grpc: () =>
        entitlement("SetEntitlement", {
          customerId: RICH,
          featureKey: "f",
          value: "v",
          validFrom: "2030-01-01T00:00:00Z",
          validUntil: "2029-01-01T00:00:00Z",
        }),
      http: () =>
        post("/v1/entitlement/set", {
          customer_id: RICH,
          feature_key: "f",
          value: "v",
          valid_from: "2030-01-01T00:00:00Z",
          valid_until: "2029-01-01",
        }),
      expected: { code: "entitlement_validation_error", message: "valid_until must be after valid_from.", details: field("valid_until") },
    },
    {
      name: "entitlements: valid_from not a time",
      grpc: () => entitlement("SetEntitlement", { customerId: RICH, featureKey: "f", value: "v" }, timestampField(4, BEYOND_YEAR_9999)),
      http: () => post("/v1/entitlement/set", { customer_id: RICH, feature_key: "f", value: "v", valid_from: "nope" }),
      expected: { code: "invalid_valid_from", message: "valid_from is not a valid timestamp.", details: field("valid_from") },
    },
    {
      name: "entitlements: events with a cursor that is not one",
      grpc: () => entitlement("ListEntitlementEvents", { customerId: RICH, cursor: "garbage" }),
      http: () => get(`/v1/entitlement/${RICH}/events?cursor=garbage`),
      expected: { code: "invalid_page_token", message: "cursor is not valid for this request.", details: field("cursor") },
    },
  ];
  it.each(cases)("$name", checkCase);
});

// ---------------------------------------------------------------------------------------------
// What both accept, and take the same way: an empty optional value is an absent one, as an unset
// proto3 field is over gRPC; unknown fields are ignored.

interface AcceptCase {
  readonly name: string;
  readonly grpc: () => GrpcCall;
  readonly http: () => HttpCall;
  /** What the two answers must agree on. */
  readonly same: (grpcBody: JsonObject, httpBody: JsonObject) => void;
}

async function checkAccepted(c: AcceptCase): Promise<void> {
  const call = c.grpc();
  const g = call.method === "EventService/WatchEvents" ? await grpc.first(call) : await grpc.unary(call);
  const h = await sendHttp(c.http());
  expect(g.ok, JSON.stringify(g.body)).toBe(true);
  expect(h.ok, JSON.stringify(h.body)).toBe(true);
  c.same(g.body, h.body);
}

const listOf = (body: JsonObject, key: string) => (body[key] ?? []) as JsonObject[];
const idsOf = (items: JsonObject[], key = "id") => items.map((item) => String(item[key]));
const sameIds =
  (grpcKey: string, httpKey: string, idKey = "id") =>
  (g: JsonObject, h: JsonObject) => {
    const ids = idsOf(listOf(h, httpKey), idKey);
    expect(ids.length).toBeGreaterThan(0);
    expect(idsOf(listOf(g, grpcKey), idKey)).toEqual(ids);
  };
/** The instant a JSON time names (gRPC's "…Z", HTTP's "….000Z"). */
const instant = (value: JsonValue | undefined) => (value === undefined || value === null ? null : Date.parse(String(value)));

describe("empty optional values and unknown fields", () => {
  const deposit = (json: JsonObject, extra?: Buffer) =>
    rpc("BillingService/Deposit", { customerId: uid("c"), amount: "1", ...json }, extra);
  const hDeposit = (body: Record<string, unknown>) => post("/v1/customers/deposit", { customer_id: uid("c"), amount: 1, ...body });
  const creditedTo = (g: JsonObject, h: JsonObject) => [(g.account as JsonObject).creditType, h.wallet];
  const ledger = (json: JsonObject) => rpc("BillingService/ListLedgerEntries", { customerId: RICH, ...json });
  const hLedger = (query: string) => get(`/v1/customers/${RICH}/ledger?${query}`);
  const cases: AcceptCase[] = [
    {
      name: "Deposit: an empty credit type (wallet) is the default one",
      grpc: () => deposit({ creditType: "" }),
      http: () => hDeposit({ wallet: "" }),
      same: (g, h) => expect(creditedTo(g, h)).toEqual(["default", "default"]),
    },
    {
      name: "Deposit: an empty credit_type (wallet's older name) is the default one",
      grpc: () => deposit({ creditType: "" }),
      http: () => hDeposit({ credit_type: "" }),
      same: (g, h) => expect(creditedTo(g, h)).toEqual(["default", "default"]),
    },
    {
      name: "Deposit: an empty wallet beside credit_type leaves credit_type",
      grpc: () => deposit({ creditType: "paid" }),
      http: () => hDeposit({ wallet: "", credit_type: "paid" }),
      same: (g, h) => expect(creditedTo(g, h)).toEqual(["paid", "paid"]),
    },
    {
      name: "Deposit: an empty source is the default one",
      grpc: () => deposit({ source: "" }),
      http: () => hDeposit({ source: "" }),
      same: (g, h) => expect([(g.account as JsonObject).source, h.source]).toEqual(["default", "default"]),
    },
    {
      name: "Deposit: an unknown field is ignored",
      grpc: () => deposit({}, varintField(99, 5n)),
      http: () => hDeposit({ unknown_field: 5 }),
      same: (g, h) => expect([g.addedAmount, h.added_amount]).toEqual(["1", 1]),
    },
    {
      name: "Deposit: starts_at in the past and expires_at 1 ms ahead, kept to the millisecond",
      grpc: () => deposit({ startsAt: "0001-01-01T00:00:00Z", expiresAt: "2026-01-01T00:00:00.001999999Z" }),
      http: () => hDeposit({ starts_at: "0001-01-01", expires_at: "2026-01-01T08:00:00.001999+08:00" }),
      same: (g, h) => {
        const account = g.account as JsonObject;
        expect([instant(account.startsAt), instant(account.expiresAt)]).toEqual([instant(h.starts_at), instant(h.expires_at)]);
        expect(instant(h.expires_at)).toBe(Date.parse("2026-01-01T00:00:00.001Z"));
      },
    },
    ...(
      [
        ["transaction_id", { transactionId: "" }],
        ["reverses_transaction_id", { reversesTransactionId: "" }],
        ["reverses_record_id", { reversesRecordId: "" }],
        ["credit_type", { creditType: "" }],
        ["cursor", { pageToken: "" }],
        ["limit", { pageSize: 0 }],
        ["operation_type", {}],
        ["created_after", {}],
        ["created_before", {}],
      ] as const
    ).map(
      ([name, json]): AcceptCase => ({
        name: `ledger: an empty ${name} filters nothing`,
        grpc: () => ledger(json),
        http: () => hLedger(`${name}=`),
        same: sameIds("entries", "items"),
      }),
    ),
    {
      name: "GetCustomer: an empty as_of is now",
      grpc: () => rpc("BillingService/GetCustomer", { customerId: RICH }),
      http: () => get(`/v1/customers/${RICH}?as_of=`),
      same: (g, h) =>
        expect(g.balance).toEqual(Object.fromEntries(Object.entries(h.balance as JsonObject).map(([k, v]) => [k, String(v)]))),
    },
    {
      name: "events: an empty customer_id is every customer",
      grpc: () => rpc("EventService/WatchEvents", { customerId: "" }),
      http: () => get("/v1/events?customer_id=&limit=1"),
      same: (g, h) => expect((g.event as JsonObject).id).toBe(listOf(h, "items")[0]?.id),
    },
    {
      name: "alerts: an empty customer_id is every customer",
      grpc: () => rpc("AlertService/ListAlerts", { customerId: "" }),
      http: () => get("/v1/alerts?customer_id=&limit="),
      same: (g, h) => expect(idsOf(listOf(g, "alerts"), "alertId")).toEqual(idsOf(listOf(h, "items"), "alert_id")),
    },
    {
      name: "slot pools: an empty wallet is every wallet",
      grpc: () => rpc("SlotService/ListPools", { customerId: RICH, wallet: "" }),
      http: () => get(`/v1/slot/customer/${RICH}?wallet=`),
      same: (g, h) => expect(idsOf(listOf(g, "pools"), "poolId")).toEqual(idsOf(listOf(h, "pools"), "pool_id")),
    },
    {
      name: "slot events: an empty wallet, resource_id, types, limit and times filter nothing",
      grpc: () => rpc("SlotService/ListSlotEvents", { customerId: RICH, wallet: "", resourceId: "", types: [], sources: [] }),
      http: () => get(`/v1/slot/events/${RICH}?wallet=&resource_id=&types=&sources=&limit=&from_at=&to_at=&cursor=`),
      same: sameIds("items", "items"),
    },
    {
      name: "entitlement events: an empty feature_key, types, limit and times filter nothing",
      grpc: () => rpc("EntitlementService/ListEntitlementEvents", { customerId: RICH, featureKey: "" }),
      http: () => get(`/v1/entitlement/${RICH}/events?feature_key=&types=&limit=&from_at=&to_at=&cursor=`),
      same: sameIds("items", "items"),
    },
    {
      name: "entitlements: empty feature_keys and include_expired list every active one",
      grpc: () => rpc("EntitlementService/ListEntitlements", { customerId: RICH }),
      http: () => get(`/v1/entitlement/${RICH}?feature_keys=&include_expired=`),
      same: (g, h) => expect(idsOf(listOf(g, "items"), "entitlementId")).toEqual(idsOf(listOf(h, "items"), "entitlement_id")),
    },
  ];
  it.each(cases)("$name", checkAccepted);
});

// ---------------------------------------------------------------------------------------------
// The same writes, read back over the other transport: the same ids, amounts, sequences,
// balance_after and times.

/** gRPC's proto3 JSON balance (int64 as strings) as HTTP's numbers. */
const balanceNumbers = (balance: JsonValue | undefined) =>
  Object.fromEntries(["total", "used", "frozen", "available"].map((k) => [k, Number((balance as JsonObject)[k])]));

/** Velobase's names of the ledger's operations over HTTP (a deposit is a grant, a deduct a consume without a hold). */
const HTTP_OPERATION: Readonly<Record<string, string>> = {
  OPERATION_TYPE_DEPOSIT: "GRANT",
  OPERATION_TYPE_DEDUCT: "CONSUME",
  OPERATION_TYPE_FREEZE: "FREEZE",
  OPERATION_TYPE_CONSUME: "CONSUME",
  OPERATION_TYPE_UNFREEZE: "UNFREEZE",
  OPERATION_TYPE_REFUND: "REFUND",
  OPERATION_TYPE_VOID: "VOID",
};

/** A gRPC ledger entry in the HTTP item's terms, for the fields both carry. */
const ledgerEntryAsHttp = (e: JsonObject) => ({
  id: e.id,
  operation_type: HTTP_OPERATION[String(e.operation)],
  amount: Number(e.amount),
  account_id: e.accountId,
  credit_type: e.creditType,
  source: e.source,
  transaction_id: e.transactionId === "" ? null : e.transactionId,
  overage: e.overage,
  created_at: instant(e.createdAt),
  sequence: Number(e.sequence),
  balance_after: balanceNumbers(e.balanceAfter),
  reverses: e.reversesTransactionId || e.reversesRecordId || null,
});

const httpLedgerItem = (i: JsonObject) => ({
  id: i.id,
  operation_type: i.operation_type,
  amount: i.amount,
  account_id: i.account_id,
  credit_type: i.credit_type,
  source: i.source,
  transaction_id: i.transaction_id,
  overage: i.overage,
  created_at: instant(i.created_at),
  sequence: i.sequence,
  balance_after: i.balance_after,
  reverses: i.reverses_transaction_id ?? i.reverses_record_id ?? null,
});

/** A feed event in one shape, from either transport. */
const feedEvent = (e: JsonObject, over: "grpc" | "http") => {
  const entries = (e.entries as JsonObject[]).map((x) => ({
    sequence: Number(x.sequence),
    operation: x.operation,
    amount: Number(x.amount),
    account: x[over === "grpc" ? "accountId" : "account_id"],
    creditType: x[over === "grpc" ? "creditType" : "credit_type"],
    balanceAfter: over === "grpc" ? balanceNumbers(x.balanceAfter) : x.balance_after,
  }));
  const balance = e[over === "grpc" ? "balanceAfter" : "balance_after"];
  return {
    id: e.id,
    cursor: e.cursor,
    type: e.type,
    customer: e[over === "grpc" ? "customerId" : "customer_id"],
    transaction: e[over === "grpc" ? "transactionId" : "transaction_id"] ?? null,
    entries,
    balanceAfter: over === "grpc" ? balanceNumbers(balance) : balance,
    createdAt: instant(e[over === "grpc" ? "createdAt" : "created_at"]),
  };
};

describe("writes over one transport, read over the other", () => {
  const MIXED = "mixed";
  const writes: Record<string, JsonObject> = {};

  beforeAll(async () => {
    const run = async (label: string, answer: Promise<Answer>) => {
      const { ok, body } = await answer;
      expect(ok, `${label}: ${JSON.stringify(body)}`).toBe(true);
      writes[label] = body;
    };
    await run(
      "deposit",
      grpc.unary(
        rpc("BillingService/Deposit", {
          customerId: MIXED,
          amount: "100",
          creditType: "paid",
          expiresAt: "2030-06-01T12:00:00.123Z",
          idempotencyKey: "mixed-topup",
        }),
      ),
    );
    await run("grant", sendHttp(post("/v1/customers/deposit", { customer_id: MIXED, amount: 50, metadata: { plan: "pro", seats: 3 } })));
    await run(
      "deduct",
      sendHttp(post("/v1/billing/deduct", { customer_id: MIXED, transaction_id: "mixed-d", amount: 30, wallet: "paid" })),
    );
    await run(
      "freeze",
      grpc.unary(rpc("BillingService/Freeze", { customerId: MIXED, transactionId: "mixed-f", amount: "20", unfreezeAfterSeconds: "3600" })),
    );
    await run("consume", sendHttp(post("/v1/billing/consume", { transaction_id: "mixed-f", actual_amount: 15 })));
    await run(
      "refund",
      grpc.unary(rpc("BillingService/Refund", { transactionId: "mixed-d", refundId: "mixed-r", amount: "10", reason: "late" })),
    );
    await run(
      "void",
      sendHttp(
        post("/v1/customers/deposit/void", { customer_id: MIXED, record_id: writes.grant?.record_id, void_id: "mixed-v", amount: 5 }),
      ),
    );
  });

  it("the ledger lists the same entries, amounts, sequences, balances after and times", async () => {
    const g = await grpc.unary(rpc("BillingService/ListLedgerEntries", { customerId: MIXED, pageSize: 100 }));
    const h = await sendHttp(get(`/v1/customers/${MIXED}/ledger?limit=100`));
    const entries = listOf(g.body, "entries").map(ledgerEntryAsHttp);
    expect(entries).toEqual(listOf(h.body, "items").map(httpLedgerItem));
    // deposit, grant, deduct, freeze, consume + unfreeze of the rest, refund, void: 8 entries, newest first.
    expect(entries.map((e) => [e.sequence, e.operation_type, e.amount])).toEqual([
      [8, "VOID", 5],
      [7, "REFUND", 10],
      [6, "UNFREEZE", 5],
      [5, "CONSUME", 15],
      [4, "FREEZE", 20],
      [3, "CONSUME", 30],
      [2, "GRANT", 50],
      [1, "GRANT", 100],
    ]);
    expect(entries[0]?.balance_after).toEqual({ total: 145, used: 35, frozen: 0, available: 110 });
    expect(h.body.total_count).toBe(8);
  });

  it("each write's answer matches what the other transport reads back", async () => {
    const ledger = listOf(
      (await grpc.unary(rpc("BillingService/ListLedgerEntries", { customerId: MIXED, pageSize: 100 }))).body,
      "entries",
    );
    const items = listOf((await sendHttp(get(`/v1/customers/${MIXED}/ledger?limit=100`))).body, "items");
    const bySequence = (n: number) => items.find((i) => i.sequence === n) ?? {};
    const entryOf = (n: number) => ledger.find((e) => e.sequence === String(n)) ?? {};
    const written = (label: string): JsonObject => writes[label] ?? {};
    const [deposit, grant, deduct, freeze, consume, refund] = ["deposit", "grant", "deduct", "freeze", "consume", "refund"].map(
      written,
    ) as [JsonObject, JsonObject, JsonObject, JsonObject, JsonObject, JsonObject];
    expect([bySequence(1).id, bySequence(1).account_id, bySequence(1).amount]).toEqual([
      deposit.ledgerEntryId,
      (deposit.account as JsonObject).id,
      Number(deposit.addedAmount),
    ]);
    expect([entryOf(2).id, entryOf(2).accountId, entryOf(2).amount, entryOf(2).metadata]).toEqual([
      grant.record_id,
      grant.account_id,
      String(grant.added_amount),
      { plan: "pro", seats: "3" },
    ]);
    const deducted = (deduct.deduct_details ?? []) as JsonObject[];
    expect([instant(entryOf(3).createdAt), entryOf(3).accountId]).toEqual([instant(deduct.deducted_at), deducted[0]?.account_id]);
    expect([instant(bySequence(4).created_at), bySequence(4).amount]).toEqual([instant(freeze.frozenAt), Number(freeze.frozenAmount)]);
    expect([instant(entryOf(5).createdAt), entryOf(5).amount]).toEqual([instant(consume.consumed_at), String(consume.consumed_amount)]);
    expect([instant(bySequence(7).created_at), bySequence(7).balance_after]).toEqual([
      instant(refund.refundedAt),
      balanceNumbers(refund.balance),
    ]);
    const voided = (written("void").balance ?? {}) as JsonObject;
    expect(entryOf(8).balanceAfter).toEqual(Object.fromEntries(Object.entries(voided).map(([k, v]) => [k, String(v)])));
  });

  it("GetCustomer answers the same balance, accounts and times", async () => {
    const g = (await grpc.unary(rpc("BillingService/GetCustomer", { customerId: MIXED }))).body;
    const h = (await sendHttp(get(`/v1/customers/${MIXED}`))).body;
    expect(balanceNumbers(g.balance)).toEqual(h.balance);
    const accounts = listOf(g, "creditTypes").flatMap((t) =>
      listOf(t, "accounts").map((a) => ({
        credit_type: a.creditType,
        ...balanceNumbers(a),
        starts_at: instant(a.startsAt),
        expires_at: instant(a.expiresAt),
      })),
    );
    expect(listOf(h, "accounts").map((a) => a.account_type)).toEqual(accounts.map(() => "CREDIT"));
    expect(accounts).toEqual(
      listOf(h, "accounts").map((a) => ({
        credit_type: a.credit_type,
        ...balanceNumbers(a),
        starts_at: instant(a.starts_at),
        expires_at: instant(a.expires_at),
      })),
    );
    expect([instant(g.createdAt), g.metadata]).toEqual([instant(h.created_at), { plan: "pro", seats: "3" }]);
    expect(instant(listOf(h, "accounts").find((a) => a.credit_type === "paid")?.expires_at)).toBe(Date.parse("2030-06-01T12:00:00.123Z"));
  });

  it("the event feed carries the same events over WatchEvents and /v1/events", async () => {
    const h = await sendHttp(get(`/v1/events?customer_id=${MIXED}&limit=100`));
    const items = listOf(h.body, "items");
    expect(items.map((e) => e.type)).toEqual([
      "ledger.deposit",
      "ledger.deposit",
      "ledger.deduct",
      "ledger.freeze",
      "ledger.consume",
      "ledger.refund",
      "ledger.void",
    ]);
    const streamed = await grpc.take(rpc("EventService/WatchEvents", { customerId: MIXED }), items.length);
    expect(streamed.map((a) => feedEvent(a.body.event as JsonObject, "grpc"))).toEqual(items.map((e) => feedEvent(e, "http")));
  });

  it("an alert, a pool and an entitlement set over one read the same over the other", async () => {
    const alert = (await sendHttp(post("/v1/alerts", { customer_id: MIXED, threshold: 25, credit_type: "paid" }))).body.alert as JsonObject;
    const alerts = listOf((await grpc.unary(rpc("AlertService/ListAlerts", { customerId: MIXED }))).body, "alerts");
    expect(alerts.map((a) => [a.alertId, a.creditType, Number(a.threshold), a.state, instant(a.createdAt)])).toEqual([
      [alert.alert_id, "paid", 25, "ALERT_STATE_ARMED", instant(alert.created_at)],
    ]);

    const granted = (await grpc.unary(rpc("SlotService/GrantCapacity", { customerId: MIXED, wallet: "seat", amount: "3" }))).body;
    const claimed = (await grpc.unary(rpc("SlotService/Claim", { customerId: MIXED, wallet: "seat", resourceId: "u1" }))).body;
    const pools = listOf((await sendHttp(get(`/v1/slot/customer/${MIXED}?wallet=seat`))).body, "pools");
    expect(pools).toEqual([
      {
        pool_id: (granted.pool as JsonObject).poolId,
        wallet: "seat",
        source: "default",
        capacity: 3,
        in_use: 1,
        available: 2,
        status: "ACTIVE",
      },
    ]);
    const events = listOf((await sendHttp(get(`/v1/slot/events/${MIXED}?types=CLAIM`))).body, "items");
    expect(events.map((e) => [e.holding_id, e.resource_id, e.amount])).toEqual([[claimed.holdingId, "u1", 1]]);

    const set = (
      await grpc.unary(
        rpc("EntitlementService/SetEntitlement", {
          customerId: MIXED,
          featureKey: "model",
          value: "gpt-4",
          validUntil: "2027-01-01T00:00:00.250Z",
          metadata: { plan: "pro" },
        }),
      )
    ).body.entitlement as JsonObject;
    expect((await sendHttp(get(`/v1/entitlement/${MIXED}/model`))).body).toEqual({
      entitlement: {
        entitlement_id: set.entitlementId,
        feature_key: "model",
        value: "gpt-4",
        valid_from: null,
        valid_until: "2027-01-01T00:00:00.250Z",
        source: null,
        description: null,
        metadata: { plan: "pro" },
        is_active: true,
      },
    });
  });
});

// ---------------------------------------------------------------------------------------------
// One key, two transports: a retry over the other transport replays the first answer, and another
// request with the key is refused with the same code over both.

describe("idempotency across transports", () => {
  interface Replay {
    readonly name: string;
    readonly first: () => Promise<Answer>;
    readonly again: () => Promise<Answer>;
    /** The same key with another request, over each transport. */
    readonly conflict: Omit<ErrorCase, "name">;
  }
  const conflict: Expected = { code: "idempotency_conflict", message: ERROR_CATALOG.idempotency_conflict.message };
  const replays: Replay[] = [
    {
      name: "Deposit over gRPC, retried over HTTP (same instant in another offset, a number in metadata)",
      first: () =>
        grpc.unary(
          rpc("BillingService/Deposit", {
            customerId: "idem",
            amount: "100",
            idempotencyKey: "idem-k1",
            creditType: "paid",
            expiresAt: "2030-01-01T00:00:00.123Z",
            metadata: { seats: "3" },
          }),
        ),
      again: () =>
        sendHttp(
          post("/v1/customers/deposit", {
            customer_id: "idem",
            amount: 100,
            wallet: "paid",
            expires_at: "2030-01-01T08:00:00.123+08:00",
            metadata: { seats: 3 },
            idempotency_key: "idem-k1",
          }),
        ),
      conflict: {
        grpc: () => rpc("BillingService/Deposit", { customerId: "idem", amount: "101", idempotencyKey: "idem-k1", creditType: "paid" }),
        http: () => ({
          method: "POST",
          path: "/v1/customers/deposit",
          body: { customer_id: "idem", amount: 101, wallet: "paid" },
          headers: { "idempotency-key": "idem-k1" },
        }),
        expected: conflict,
      },
    },
    {
      name: "Deduct over HTTP, retried over gRPC (the wallets in another order)",
      first: () =>
        sendHttp(
          post("/v1/billing/deduct", { customer_id: "idem", transaction_id: "idem-d", amount: 10, credit_types: ["paid", "default"] }),
        ),
      again: () =>
        grpc.unary(
          rpc("BillingService/Deduct", { customerId: "idem", transactionId: "idem-d", amount: "10", creditTypes: ["default", "paid"] }),
        ),
      conflict: {
        grpc: () => rpc("BillingService/Deduct", { customerId: "idem", transactionId: "idem-d", amount: "11" }),
        http: () => post("/v1/billing/deduct", { customer_id: "idem", transaction_id: "idem-d", amount: 10, wallet: "paid" }),
        expected: conflict,
      },
    },
    {
      name: "Freeze over gRPC, retried over HTTP",
      first: () =>
        grpc.unary(
          rpc("BillingService/Freeze", { customerId: "idem", transactionId: "idem-f", amount: "20", unfreezeAfterSeconds: "3600" }),
        ),
      again: () =>
        sendHttp(post("/v1/billing/freeze", { customer_id: "idem", transaction_id: "idem-f", amount: 20, unfreeze_after_seconds: 3600 })),
      conflict: {
        grpc: () =>
          rpc("BillingService/Freeze", { customerId: "idem", transactionId: "idem-f", amount: "20", consumeAfterSeconds: "3600" }),
        http: () => post("/v1/billing/freeze", { customer_id: "idem", transaction_id: "idem-f", amount: 20 }),
        expected: conflict,
      },
    },
    {
      name: "Consume over HTTP, retried over gRPC",
      first: () => sendHttp(post("/v1/billing/consume", { transaction_id: "idem-f", actual_amount: 5 })),
      again: () => grpc.unary(rpc("BillingService/Consume", { transactionId: "idem-f", actualAmount: "5" })),
      conflict: {
        grpc: () => rpc("BillingService/Consume", { transactionId: "idem-f" }),
        http: () => post("/v1/billing/consume", { transaction_id: "idem-f", actual_amount: 6 }),
        expected: {
          code: "freeze_records_already_consumed",
          message: ERROR_CATALOG.freeze_records_already_consumed.message,
          details: { consumed: "5", requested: "20" },
        },
        httpAnswer: { details: { consumed: "5", requested: "6" } },
        why: "each side asked for another actual_amount (gRPC: unset, the whole hold)",
      },
    },
    {
      name: "Refund over gRPC, retried over HTTP",
      first: () => grpc.unary(rpc("BillingService/Refund", { transactionId: "idem-d", refundId: "idem-r", amount: "3", reason: "late" })),
      again: () => sendHttp(post("/v1/billing/refund", { transaction_id: "idem-d", refund_id: "idem-r", amount: 3, reason: "late" })),
      conflict: {
        grpc: () => rpc("BillingService/Refund", { transactionId: "idem-d", refundId: "idem-r", amount: "3", reason: "other" }),
        http: () =>
          post("/v1/billing/refund", { transaction_id: "idem-d", refund_id: "idem-r", amount: 3, reason: "late", customer_id: "idem" }),
        expected: conflict,
      },
    },
    {
      name: "GrantCapacity over gRPC, retried over HTTP",
      first: () =>
        grpc.unary(rpc("SlotService/GrantCapacity", { customerId: "idem", wallet: "ip", amount: "3", idempotencyKey: "idem-s" })),
      again: () => sendHttp(post("/v1/slot/grant", { customer_id: "idem", wallet: "ip", amount: 3, idempotency_key: "idem-s" })),
      conflict: {
        grpc: () => rpc("SlotService/RevokeCapacity", { customerId: "idem", wallet: "ip", amount: "3", idempotencyKey: "idem-s" }),
        http: () => post("/v1/slot/grant", { customer_id: "idem", wallet: "ip", amount: 4, idempotency_key: "idem-s" }),
        expected: conflict,
      },
    },
  ];

  it.each(replays)("$name", async (r) => {
    const first = await r.first();
    expect(first.ok, JSON.stringify(first.body)).toBe(true);
    const again = await r.again();
    expect(again.ok, JSON.stringify(again.body)).toBe(true);
    const replayed = again.body.is_idempotent_replay ?? again.body.isIdempotentReplay;
    expect([first.body.is_idempotent_replay ?? first.body.isIdempotentReplay, replayed]).toEqual([false, true]);
    await checkCase({ name: r.name, ...r.conflict });
  });

  it("the key with another customer is transaction_conflict over both", async () => {
    const other: Expected = { code: "transaction_conflict", message: ERROR_CATALOG.transaction_conflict.message };
    expect((await sendHttp(post("/v1/customers/deposit", { customer_id: "idem-2", amount: 5 }))).ok).toBe(true);
    await checkCase({
      name: "deposit key",
      grpc: () => rpc("BillingService/Deposit", { customerId: "idem-2", amount: "100", idempotencyKey: "idem-k1", creditType: "paid" }),
      http: () => post("/v1/customers/deposit", { customer_id: "idem-2", amount: 100, wallet: "paid", idempotency_key: "idem-k1" }),
      expected: other,
    });
    await checkCase({
      name: "deduct id",
      grpc: () => rpc("BillingService/Deduct", { customerId: "idem-2", transactionId: "idem-d", amount: "1" }),
      http: () => post("/v1/billing/deduct", { customer_id: "idem-2", transaction_id: "idem-d", amount: 1 }),
      expected: other,
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Where the README says the two differ on purpose, each side's own answer.

describe("differences the README documents", () => {
  it("a key with spaces around it: HTTP trims them, HTTP/2 drops such a header before gRPC sees it", async () => {
    const padded = ` ${s.apiKey} `;
    expectGrpcError(await grpc.unary(rpc("BillingService/GetCustomer", { customerId: RICH }, undefined, padded)), {
      code: "missing_api_key",
      message: ERROR_CATALOG.missing_api_key.message,
    });
    expect((await sendHttp(get(`/v1/customers/${RICH}`, padded))).ok).toBe(true);
  });

  it("an empty idempotency key: proto3's unset over gRPC (no key), invalid_argument over HTTP", async () => {
    const g = await grpc.unary(rpc("BillingService/Deposit", { customerId: uid("c"), amount: "1", idempotencyKey: "" }));
    expect([g.ok, g.body.isIdempotentReplay]).toEqual([true, false]);
    expectHttpError(await sendHttp(post("/v1/customers/deposit", { customer_id: uid("c"), amount: 1, idempotency_key: "" })), {
      code: "invalid_argument",
      message: idWords("idempotency_key"),
      details: field("idempotency_key"),
    });
  });

  it("an amount as a JSON string: proto3 JSON's int64 over gRPC, not Velobase's JSON integer over HTTP", async () => {
    expect((await grpc.unary(rpc("BillingService/Deposit", { customerId: uid("c"), amount: "10" }))).ok).toBe(true);
    expectHttpError(await sendHttp(post("/v1/customers/deposit", { customer_id: uid("c"), amount: "10" })), {
      code: "amount_must_be_positive",
      message: ERROR_CATALOG.amount_must_be_positive.message,
      details: field("amount"),
    });
  });

  it("allow_overage left out: false over gRPC, true over HTTP (Velobase charges overage)", async () => {
    const [overGrpc, overHttp] = [uid("hold"), uid("hold")];
    for (const transactionId of [overGrpc, overHttp]) {
      expect((await grpc.unary(rpc("BillingService/Freeze", { customerId: RICH, transactionId, amount: "1" }))).ok).toBe(true);
    }
    expectGrpcError(await grpc.unary(rpc("BillingService/Consume", { transactionId: overGrpc, actualAmount: "2" })), {
      code: "actual_amount_exceeds_frozen_amount",
      message: ERROR_CATALOG.actual_amount_exceeds_frozen_amount.message,
      details: { requested: "2", frozen: "1" },
    });
    const h = await sendHttp(post("/v1/billing/consume", { transaction_id: overHttp, actual_amount: 2 }));
    expect([h.body.consumed_amount, h.body.overage_amount]).toEqual([2, 1]);
    expect((await grpc.unary(rpc("BillingService/Unfreeze", { transactionId: overGrpc }))).ok).toBe(true);
    expect((await grpc.unary(rpc("BillingService/Refund", { transactionId: overHttp, refundId: uid("refund") }))).ok).toBe(true);
  });
});
