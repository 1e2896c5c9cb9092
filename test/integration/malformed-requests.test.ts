import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScalarType } from "@bufbuild/protobuf";
import {
  DeductRequest,
  DeductResponse,
  DepositRequest,
  DepositRequest_MetadataEntry,
  DepositResponse,
  GetCustomerRequest,
  GetCustomerResponse,
  GetTransactionRequest,
  ListLedgerEntriesRequest,
} from "../../gen/velobase/billing/v1/billing.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { descriptorRegistry } from "../../src/grpc/descriptors.js";
import { BILLING_SERVICE_NAME } from "../../src/grpc/server.js";
import { expectError } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { RawClient } from "../support/raw-client.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Hostile bytes, replayed exactly as a probe sent them, through a client that does no encoding.
const MESSAGE_BYTES_MAX = 4096;
let s: TestServer;
let raw: RawClient;

beforeAll(async () => {
  s = await startTestServer({ GRPC_MAX_MESSAGE_BYTES: String(MESSAGE_BYTES_MAX) });
  raw = new RawClient(s.app.port, s.apiKey);
});

afterAll(async () => {
  raw?.close();
  await s?.stop();
});

const hex = (text: string) => Buffer.from(text.replace(/\s/g, ""), "hex");

describe("a request that is not a valid protobuf message", () => {
  // Field 15 is unknown to every request, so only the group structure is judged; the decoder
  // allows 100 levels inside a group.
  const nestedGroups = Buffer.concat([Buffer.alloc(101, 0x7b), Buffer.alloc(101, 0x7c)]);
  it.each([
    ["a truncated field (length 5, two bytes follow)", hex("0a 05 61 62")],
    ["wire type 7", hex("0f")],
    ["an unterminated group", hex("0b")],
    ["an 11-byte varint", hex("10 ff ff ff ff ff ff ff ff ff ff 01")],
    ["groups nested 101 deep", nestedGroups],
  ])("is refused as invalid_argument: %s", async (_name, bytes) => {
    const metadata = await expectError(raw.call("Deposit", bytes), "invalid_argument", "The request is not a valid protobuf message.");
    expect(metadata).toEqual({ field: "request" });
  });

  it("is refused by every method", async () => {
    for (const method of ["Deposit", "Deduct", "Freeze", "Consume", "Unfreeze", "GetCustomer", "GetTransaction", "ListLedgerEntries"]) {
      expect(await expectError(raw.call(method, hex("0f")), "invalid_argument", "The request is not a valid protobuf message.")).toEqual({
        field: "request",
      });
    }
  });

  it("changes nothing, and a valid message through the same client still works", async () => {
    const customerId = uid("raw");
    const bytes = Buffer.from(DepositRequest.encode(DepositRequest.fromPartial({ customerId, amount: 5n })).finish());
    const response = DepositResponse.decode(await raw.call("Deposit", bytes));
    expect(response.balance?.available).toBe(5n);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });
});

describe("an oversized request", () => {
  it("keeps grpc-js's RESOURCE_EXHAUSTED at GRPC_MAX_MESSAGE_BYTES", async () => {
    const description = "d".repeat(MESSAGE_BYTES_MAX);
    const bytes = Buffer.from(
      DepositRequest.encode(DepositRequest.fromPartial({ customerId: uid("big"), amount: 1n, description })).finish(),
    );
    const error = await raw.call("Deposit", bytes).then(
      () => null,
      (e: unknown) => e as ServiceError,
    );
    expect(error?.code).toBe(status.RESOURCE_EXHAUSTED);
  });

  it("is accepted just under the limit", async () => {
    const bytes = Buffer.from(
      DepositRequest.encode(DepositRequest.fromPartial({ customerId: uid("fits"), amount: 1n, description: "d".repeat(1000) })).finish(),
    );
    expect(DepositResponse.decode(await raw.call("Deposit", bytes)).addedAmount).toBe(1n);
  });
});

/** A length-delimited field: tag, length, bytes. */
function delimited(fieldNumber: number, bytes: Buffer): Buffer {
  if (bytes.length > 127) throw new Error("one-byte lengths only");
  return Buffer.concat([Buffer.from([(fieldNumber << 3) | 2, bytes.length]), bytes]);
}
const mapEntry = (key: Buffer, value: Buffer) => Buffer.concat([delimited(1, key), delimited(2, value)]);
const depositBytes = (customerId: string) =>
  Buffer.from(DepositRequest.encode(DepositRequest.fromPartial({ customerId, amount: 5n })).finish());

describe("text that is not valid UTF-8", () => {
  it("in description (61 c3 28 ed a0 80 62) is refused naming the field, and nothing is stored", async () => {
    const customerId = uid("utf8");
    const bytes = Buffer.concat([depositBytes(customerId), delimited(10, hex("61 c3 28 ed a0 80 62"))]);
    expect(await expectError(raw.call("Deposit", bytes), "invalid_argument", "description is not valid UTF-8.")).toEqual({
      field: "description",
    });
    await expectError(s.client.call("getCustomer", { customerId }), "customer_not_found");
  });

  it("in a metadata key (ff) is refused naming the field", async () => {
    const bytes = Buffer.concat([depositBytes(uid("utf8")), delimited(11, mapEntry(hex("ff"), Buffer.from("v")))]);
    expect(await expectError(raw.call("Deposit", bytes), "invalid_argument", "metadata is not valid UTF-8.")).toEqual({
      field: "metadata",
    });
  });

  // Every string of every request: scalar and repeated strings, map keys and map values.
  const service = descriptorRegistry().getService(BILLING_SERVICE_NAME);
  const cases = (service?.methods ?? []).flatMap((method) =>
    method.input.fields.flatMap((field) => {
      const invalid = hex("61 ff 62");
      const stringField =
        (field.fieldKind === "scalar" || (field.fieldKind === "list" && field.listKind === "scalar")) && field.scalar === ScalarType.STRING;
      if (stringField) return [[method.name, field.name, delimited(field.number, invalid)] as const];
      if (field.fieldKind !== "map") return [];
      return [
        [method.name, `${field.name} (key)`, delimited(field.number, mapEntry(invalid, Buffer.from("v")))] as const,
        [method.name, `${field.name} (value)`, delimited(field.number, mapEntry(Buffer.from("k"), invalid))] as const,
      ];
    }),
  );

  it("covers the string fields of every request", () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  it.each(cases)("%s %s is refused naming the field", async (method, label, bytes) => {
    const field = label.replace(/ \((key|value)\)$/, "");
    expect(await expectError(raw.call(method, bytes), "invalid_argument", `${field} is not valid UTF-8.`)).toEqual({ field });
  });

  it("is told apart from a U+FFFD the caller really sent, which is stored as sent", async () => {
    const customerId = uid("fffd");
    const description = "a\uFFFDb";
    await s.client.call("deposit", { customerId, amount: 1n, description, metadata: { "\uFFFD": "\uFFFD" } });
    const { entries } = await s.client.call("listLedgerEntries", { customerId });
    expect(entries.map((e) => [e.description, e.metadata])).toEqual([[description, { "\uFFFD": "\uFFFD" }]]);
  });
});

describe("a metadata key named __proto__", () => {
  const metadata = Object.fromEntries([
    ["__proto__", "p"],
    ["plan", "pro"],
  ]);
  // ts-proto's decoder drops this key too, so responses are checked as bytes.
  const entryBytes = Buffer.from(DepositRequest_MetadataEntry.encode({ key: "__proto__", value: "p" }).finish());
  const occurrences = (haystack: Buffer) => {
    let count = 0;
    for (let at = haystack.indexOf(entryBytes); at !== -1; at = haystack.indexOf(entryBytes, at + 1)) count += 1;
    return count;
  };

  it("is stored as sent and comes back from GetCustomer, GetTransaction and ListLedgerEntries", async () => {
    const customerId = uid("proto");
    const transactionId = uid("tx");
    const deposit = { ...DepositRequest.fromPartial({ customerId, amount: 10n }), metadata };
    expect(Buffer.from(DepositRequest.encode(deposit).finish()).includes(entryBytes)).toBe(true);
    await raw.call("Deposit", Buffer.from(DepositRequest.encode(deposit).finish()));
    const deduct = { ...DeductRequest.fromPartial({ customerId, transactionId, amount: 3n }), metadata };
    const deductBytes = Buffer.from(DeductRequest.encode(deduct).finish());
    expect(DeductResponse.decode(await raw.call("Deduct", deductBytes)).balance?.available).toBe(7n);

    const customer = await raw.call(
      "GetCustomer",
      Buffer.from(GetCustomerRequest.encode(GetCustomerRequest.fromPartial({ customerId })).finish()),
    );
    expect(occurrences(customer)).toBe(1);
    expect(GetCustomerResponse.decode(customer).metadata).toEqual({ plan: "pro" });
    const transaction = await raw.call(
      "GetTransaction",
      Buffer.from(GetTransactionRequest.encode(GetTransactionRequest.fromPartial({ transactionId })).finish()),
    );
    expect(occurrences(transaction)).toBe(1);
    const ledger = await raw.call(
      "ListLedgerEntries",
      Buffer.from(ListLedgerEntriesRequest.encode(ListLedgerEntriesRequest.fromPartial({ customerId })).finish()),
    );
    expect(occurrences(ledger)).toBe(2);

    // Metadata labels a write (it is not fingerprinted): a retry with or without the key replays.
    expect(DeductResponse.decode(await raw.call("Deduct", deductBytes)).isIdempotentReplay).toBe(true);
    const without = { ...deduct, metadata: { plan: "pro" } };
    expect(DeductResponse.decode(await raw.call("Deduct", Buffer.from(DeductRequest.encode(without).finish()))).isIdempotentReplay).toBe(
      true,
    );
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });
});

describe("a malformed request without a key", () => {
  it("is refused for its key first: missing_api_key, then invalid_api_key, never a hint about its bytes", async () => {
    const anonymous = new RawClient(s.app.port, null);
    const wrong = new RawClient(s.app.port, "vb_test_fake");
    try {
      const truncated = Buffer.from([0x0a, 0x05, 0x61]);
      await expectError(anonymous.call("Deposit", truncated), "missing_api_key");
      await expectError(wrong.call("Deposit", truncated), "invalid_api_key");
    } finally {
      anonymous.close();
      wrong.close();
    }
  });
});
