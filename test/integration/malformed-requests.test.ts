import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DepositRequest, DepositResponse } from "../../gen/velobase/billing/v1/billing.js";
import { verifyLedger } from "../../src/billing/verify.js";
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
  raw = new RawClient(s.app.port);
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
    const bytes = Buffer.from(DepositRequest.encode(DepositRequest.fromPartial({ customerId: uid("big"), amount: 1n, description })).finish());
    const error = await raw.call("Deposit", bytes).then(
      () => null,
      (e: unknown) => e as ServiceError,
    );
    expect(error?.code).toBe(status.RESOURCE_EXHAUSTED);
  });

  it("is accepted just under the limit", async () => {
    const bytes = Buffer.from(DepositRequest.encode(DepositRequest.fromPartial({ customerId: uid("fits"), amount: 1n, description: "d".repeat(1000) })).finish());
    expect(DepositResponse.decode(await raw.call("Deposit", bytes)).addedAmount).toBe(1n);
  });
});
