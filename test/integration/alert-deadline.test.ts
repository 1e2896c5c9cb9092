import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import mysql, { type Connection, type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AlertServiceClient, SetAlertRequest } from "../../gen/velobase/billing/v1/alerts.js";
import { alertCall } from "../support/events.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { lockingReadWaits, waitFor } from "../support/waiting.js";

// An alert setting whose deadline passes before its transaction starts is not run. The server
// has one database connection: a Deduct waiting on a customer held by a raw connection keeps it,
// so the alert call waits for the connection until its deadline has passed. Once the customer is
// free the connection reaches the alert call, which must not store its alert.

let s: TestServer;
let other: Connection;

beforeAll(async () => {
  s = await startTestServer({ DB_POOL_SIZE: "1", DB_LOCK_WAIT_TIMEOUT_S: "120" });
  other = await mysql.createConnection(s.databaseUrl);
});

afterAll(async () => {
  await other?.end();
  await s?.stop();
});

function setAlertWithDeadline(customerId: string, threshold: bigint, deadlineMs: number): Promise<ServiceError | null> {
  const client = new AlertServiceClient(`127.0.0.1:${s.app.port}`, credentials.createInsecure());
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${s.apiKey}`);
  const request = SetAlertRequest.fromPartial({ customerId, threshold });
  return new Promise((resolve) =>
    client.setAlert(request, metadata, { deadline: new Date(Date.now() + deadlineMs) }, (error) => {
      client.close();
      resolve(error);
    }),
  );
}

describe("an alert setting waiting for a database connection", () => {
  it("its deadline passes → DEADLINE_EXCEEDED, and it is not stored once the connection is free", async () => {
    const customerId = uid("alert-late");
    await s.client.call("deposit", { customerId, amount: 100n });
    const [rows] = await other.query<RowDataPacket[]>("SELECT id FROM customers WHERE customer_id = ?", [customerId]);
    await other.query("BEGIN");
    await other.query("SELECT id FROM customers WHERE id = ? FOR UPDATE", [rows[0]?.id]);
    const deduct = s.client.call("deduct", { customerId, transactionId: uid("held"), amount: 10n });
    deduct.catch(() => undefined); // Awaited below; a failed step must not leave it unhandled.
    try {
      await waitFor(() => lockingReadWaits(other), "the Deduct to wait for the customer");
      // Shorter than the Deduct's bounded wait (GROUP_COMMIT_LOCK_WAIT_S), which keeps the one connection until then.
      expect((await setAlertWithDeadline(customerId, 50n, 400))?.code).toBe(status.DEADLINE_EXCEEDED);
    } finally {
      await other.query("ROLLBACK");
    }
    expect((await deduct).balance?.available).toBe(90n);
    // The alert call got the connection after the Deduct; this list runs after it.
    expect(await alertCall(s.app.port, s.apiKey, "listAlerts", { customerId, pageSize: 0, pageToken: "" })).toEqual({
      alerts: [],
      nextPageToken: "",
    });
    const set = (await alertCall(s.app.port, s.apiKey, "setAlert", { customerId, threshold: 50n })) as { alert?: { threshold: bigint } };
    expect(set.alert?.threshold).toBe(50n);
  });
});
