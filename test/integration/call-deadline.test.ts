import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { Redis } from "ioredis";
import mysql, { type Connection, type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeductRequest } from "../../gen/velobase/billing/v1/billing.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { expectError, type TestClient } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { consoleSession } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { lockingReadWaits, waitFor } from "../support/waiting.js";

// A call whose deadline passes (gRPC), or whose client goes away (HTTP, the console), while it waits behind
// another write of its customer is not run: the customer is held by a raw connection, a first
// Deduct waits on that lock inside its transaction, the second call waits behind it. Once the
// lock is released the first Deduct and a later one go through; the second call never does.
//
// That the second call reached the server (and so would run, were its signal not honoured) is
// read from its rate-limit token in Redis: its project's long window counts every admitted call.

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `vb-test-deadline-${process.pid}-${Date.now().toString(36)}`;

let s: TestServer;
let other: Connection;
let redis: Redis;
let client: TestClient;
let apiKey: string;
/** The server's log lines (info and up). */
const logLines: string[] = [];

beforeAll(async () => {
  s = await startTestServer(
    { REDIS_URL, RATE_LIMIT_KEY_PREFIX: PREFIX, DB_LOCK_WAIT_TIMEOUT_S: "120" },
    { logDestination: { write: (line: string) => void logLines.push(line) } },
  );
  // One call a second over a long window: its Redis counter lives long and counts every call.
  const project = await s.createProject({ ratePerSecond: 1, burst: 1_000 });
  apiKey = (await s.createKey({ project })).key;
  client = s.clientWith(apiKey);
  other = await mysql.createConnection(s.databaseUrl);
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  await other?.end();
  const keys = (await redis?.keys(`${PREFIX}:*`)) ?? [];
  if (keys.length > 0) await redis.del(...keys);
  redis?.disconnect();
  await s?.stop();
});

/** Calls admitted so far (the project's long-window rate-limit counter). */
async function admitted(): Promise<number> {
  const keys = await redis.keys(`${PREFIX}:window:*`);
  const values = keys.length === 0 ? [] : await redis.mget(...keys);
  return values.reduce((sum, value) => sum + Number(value ?? 0), 0);
}

async function available(customerId: string): Promise<bigint | undefined> {
  return (await client.call("getCustomer", { customerId })).balance?.available;
}

/** Runs `during` while the raw connection holds the customer's row, then releases it. */
async function whileCustomerHeld<T>(customerId: string, during: () => Promise<T>): Promise<T> {
  const [rows] = await other.query<RowDataPacket[]>("SELECT id FROM customers WHERE customer_id = ?", [customerId]);
  await other.query("BEGIN");
  await other.query("SELECT id FROM customers WHERE id = ? FOR UPDATE", [rows[0]?.id]);
  try {
    return await during();
  } finally {
    await other.query("ROLLBACK");
  }
}

/**
 * Holds the customer from the raw connection, starts a first Deduct of 10 that waits on it, runs
 * `second` (which must end before the lock is released), then releases the customer and lets the
 * first Deduct and a third (5) go through; answers the balance the third leaves. The third is
 * queued after the second call, so once it has answered, the second call has been decided.
 */
async function behindAHeldCustomer(customerId: string, second: () => Promise<void>): Promise<bigint | undefined> {
  // The first Deduct comes back wrapped: awaiting it inside would wait for the lock it waits on.
  const { first } = await whileCustomerHeld(customerId, async () => {
    const deduct = client.call("deduct", { customerId, transactionId: uid("first"), amount: 10n });
    deduct.catch(() => undefined); // Awaited below; a failed step must not leave it unhandled.
    await waitFor(() => lockingReadWaits(other), "the first Deduct to wait for the customer");
    await second();
    return { first: deduct };
  });
  expect((await first).balance?.available).toBe(90n);
  const third = await client.call("deduct", { customerId, transactionId: uid("third"), amount: 5n });
  return third.balance?.available;
}

/** Closes every other connection of the database that waits inside a locking read. */
async function killLockWaits(connection: Connection): Promise<void> {
  const [rows] = await connection.query<RowDataPacket[]>(
    `SELECT ID AS id FROM information_schema.PROCESSLIST
     WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND INFO LIKE '%FOR UPDATE%'`,
  );
  for (const row of rows) await connection.query("KILL CONNECTION ?", [Number(row.id)]).catch(() => undefined);
}

/** The "http call" log line of a request. */
function httpCallLine(requestId: string): { code?: string; status?: number; clientGone?: boolean; cause?: object } | undefined {
  type Line = { msg?: string; requestId?: string; code?: string; status?: number; clientGone?: boolean; cause?: object };
  return logLines.map((line) => JSON.parse(line) as Line).find((line) => line.msg === "http call" && line.requestId === requestId);
}

/** POSTs a request, then goes away (aborts) once the server has admitted it, before any answer. */
async function goneOnceAdmitted(what: string, url: string, init: { headers: Record<string, string>; body: string }): Promise<void> {
  const before = await admitted();
  const controller = new AbortController();
  const outcome = fetch(url, { ...init, method: "POST", signal: controller.signal }).then(
    () => "answered",
    (error: unknown) => (error instanceof Error ? error.name : "failed"),
  );
  await waitFor(async () => (await admitted()) > before, `${what} to be admitted`);
  controller.abort();
  expect(await outcome).toBe("AbortError");
}

describe("a call that waits behind another write of its customer", () => {
  it("gRPC: its deadline passes → DEADLINE_EXCEEDED, and it is not run once the customer is free", async () => {
    const customerId = uid("deadline");
    await client.call("deposit", { customerId, amount: 100n });
    const late = uid("late");
    const afterThird = await behindAHeldCustomer(customerId, async () => {
      const before = await admitted();
      const answered = new Promise<ServiceError | null>((resolve) => {
        const metadata = new Metadata();
        metadata.set("authorization", `Bearer ${apiKey}`);
        const request = DeductRequest.fromPartial({ customerId, transactionId: late, amount: 20n });
        client.raw.deduct(request, metadata, { deadline: new Date(Date.now() + 2_000) }, (error) => resolve(error));
      });
      await waitFor(async () => (await admitted()) > before, "the late Deduct to be admitted");
      expect((await answered)?.code).toBe(status.DEADLINE_EXCEEDED);
    });
    await expectError(client.call("getTransaction", { transactionId: late }), "transaction_not_found");
    expect(afterThird).toBe(85n);
    expect(await available(customerId)).toBe(85n);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("gRPC: its client cancels it → it is not run once the customer is free, and is counted as the client's cancel", async () => {
    const customerId = uid("cancel");
    await client.call("deposit", { customerId, amount: 100n });
    const cancelled = uid("cancelled");
    const requestId = uid("req");
    const afterThird = await behindAHeldCustomer(customerId, async () => {
      const before = await admitted();
      let call: { cancel(): void } | undefined;
      const answered = new Promise<ServiceError | null>((resolve) => {
        const metadata = new Metadata();
        metadata.set("authorization", `Bearer ${apiKey}`);
        metadata.set("x-request-id", requestId);
        const request = DeductRequest.fromPartial({ customerId, transactionId: cancelled, amount: 20n });
        call = client.raw.deduct(request, metadata, (error) => resolve(error));
      });
      await waitFor(async () => (await admitted()) > before, "the Deduct to be admitted");
      call?.cancel();
      expect((await answered)?.code).toBe(status.CANCELLED);
    });
    await expectError(client.call("getTransaction", { transactionId: cancelled }), "transaction_not_found");
    expect(afterThird).toBe(85n);
    type Line = { msg?: string; requestId?: string; code?: string; grpcCode?: string };
    const callLine = () =>
      logLines.map((line) => JSON.parse(line) as Line).find((line) => line.msg === "call" && line.requestId === requestId);
    await waitFor(async () => callLine() !== undefined, "the call's log line");
    expect(callLine()).toMatchObject({ code: "cancelled", grpcCode: "CANCELLED" });
  });

  it("HTTP: its client goes away → it is not run once the customer is free", async () => {
    const customerId = uid("gone");
    await client.call("deposit", { customerId, amount: 100n });
    const gone = uid("gone-tx");
    const requestId = uid("req");
    const afterThird = await behindAHeldCustomer(customerId, () =>
      goneOnceAdmitted("the HTTP Deduct", `${s.httpUrl}/v1/billing/deduct`, {
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json", "x-request-id": requestId },
        body: JSON.stringify({ customer_id: customerId, transaction_id: gone, amount: 20 }),
      }),
    );
    await expectError(client.call("getTransaction", { transactionId: gone }), "transaction_not_found");
    expect(afterThird).toBe(85n);
    // Counted and logged as the client's cancel, not as a 503 of ours.
    await waitFor(async () => httpCallLine(requestId) !== undefined, "the call's log line");
    expect(httpCallLine(requestId)).toMatchObject({ code: "cancelled", status: 499, clientGone: true });
    expect(await available(customerId)).toBe(85n);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });

  it("console: the operator's browser goes away → its deposit is not run once the customer is free", async () => {
    const customerId = uid("tab");
    await client.call("deposit", { customerId, amount: 100n });
    const session = await consoleSession(s.httpUrl, apiKey);
    const afterThird = await behindAHeldCustomer(customerId, () =>
      goneOnceAdmitted("the console deposit", `${s.httpUrl}/console/customers/${customerId}/deposit`, {
        headers: { cookie: session.cookie, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: session.token, amount: "20", description: "closed tab", idempotency_key: uid("k") }).toString(),
      }),
    );
    expect(afterThird).toBe(85n);
    expect(await available(customerId)).toBe(85n);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });
});

/** An HTTP Deduct of 20 whose client leaves once it waits on its held customer inside its transaction. */
async function deductLeftWhileWaiting(customerId: string, requestId: string): Promise<void> {
  const controller = new AbortController();
  const sent = fetch(`${s.httpUrl}/v1/billing/deduct`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json", "x-request-id": requestId },
    body: JSON.stringify({ customer_id: customerId, transaction_id: uid("left-tx"), amount: 20 }),
    signal: controller.signal,
  }).then(
    () => "answered",
    (error: unknown) => (error instanceof Error ? error.name : "failed"),
  );
  await waitFor(() => lockingReadWaits(other), "the HTTP Deduct to wait for the customer inside its transaction");
  controller.abort();
  expect(await sent).toBe("AbortError");
}

describe("a call whose client leaves while it runs", () => {
  it("HTTP: runs to its end and is still logged, with its outcome and that its client was gone", async () => {
    const customerId = uid("left");
    await client.call("deposit", { customerId, amount: 100n });
    const requestId = uid("req");
    await whileCustomerHeld(customerId, async () => {
      await deductLeftWhileWaiting(customerId, requestId);
    });
    await waitFor(async () => httpCallLine(requestId) !== undefined, "the call's log line");
    expect(httpCallLine(requestId)).toMatchObject({ code: "ok", status: 200, clientGone: true });
    expect(await available(customerId)).toBe(80n);
  });

  it("HTTP: fails on our side after its client left → logged as that 503 of ours, not as the client's cancel", async () => {
    const customerId = uid("lost");
    await client.call("deposit", { customerId, amount: 100n });
    const requestId = uid("req");
    await whileCustomerHeld(customerId, async () => {
      await deductLeftWhileWaiting(customerId, requestId);
      // The database drops the call's connection under it, at every try: an outage, not the client's leaving.
      await waitFor(async () => {
        await killLockWaits(other);
        return httpCallLine(requestId) !== undefined;
      }, "the Deduct to give up");
    });
    expect(httpCallLine(requestId)).toMatchObject({
      code: "service_unavailable",
      status: 503,
      clientGone: true,
      cause: { code: "PROTOCOL_CONNECTION_LOST" },
    });
    expect(await available(customerId)).toBe(100n);
  });
});
