import type { ServiceError } from "@grpc/grpc-js";
import type { RowDataPacket } from "mysql2/promise";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AlertState } from "../../gen/velobase/billing/v1/alerts.js";
import { ALERTS_PER_CUSTOMER_MAX } from "../../src/domain/limits.js";
import { EXPIRY_BATCH_SIZE } from "../../src/operations/expiry.js";
import { sweep, sweepDueHolds } from "../../src/operations/sweeper.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { expectError, TestClient } from "../support/client.js";
import { alertCall } from "../support/events.js";
import { ts } from "../support/fixtures.js";
import { expectHttpError, HttpTestClient, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";

let s: TestServer;
let http: HttpTestClient;

beforeAll(async () => {
  s = await startTestServer();
  http = new HttpTestClient(s.httpUrl, s.apiKey);
});
afterAll(async () => {
  await s?.stop();
});

const listAlerts = (key: string, customerId: string, page: { pageSize?: number; pageToken?: string } = {}) =>
  alertCall(s.app.port, key, "listAlerts", { customerId, pageSize: 0, pageToken: "", ...page });

const deposit = (customerId: string, amount: bigint, creditType = "default") =>
  s.client.call("deposit", { customerId, amount, creditType });

describe("AlertService", () => {
  it("sets, replaces, lists and deletes a customer's alerts; the state starts from the balance", async () => {
    await deposit("al-1", 500n);
    await deposit("al-1", 20n, "paid");
    const set = (await alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-1", threshold: 100n })) as {
      alert: { alertId: string; state: AlertState; threshold: bigint; creditType?: string };
      created: boolean;
    };
    expect(set.created).toBe(true);
    expect(set.alert).toMatchObject({ customerId: "al-1", threshold: 100n, state: AlertState.ALERT_STATE_ARMED });
    expect(set.alert.creditType).toBeUndefined();

    const paid = (await alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-1", creditType: "paid", threshold: 50n })) as {
      alert: { state: AlertState; creditType?: string };
      created: boolean;
    };
    expect(paid).toMatchObject({ created: true, alert: { creditType: "paid", state: AlertState.ALERT_STATE_LOW } });

    const replaced = (await alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-1", threshold: 1000n })) as {
      alert: { alertId: string; state: AlertState };
      created: boolean;
    };
    expect(replaced).toMatchObject({ created: false, alert: { alertId: set.alert.alertId, state: AlertState.ALERT_STATE_LOW } });
    // The same set again in the same millisecond (the test clock stands still) changes no column:
    // still a replacement, not a creation.
    const again = (await alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-1", threshold: 1000n })) as { created: boolean };
    expect(again.created).toBe(false);

    const read = await s.createKey({ scope: "read" });
    const listed = (await listAlerts(read.key, "al-1")) as {
      alerts: { creditType?: string; threshold: bigint }[];
    };
    expect(listed.alerts.map((a) => [a.creditType ?? null, a.threshold])).toEqual([
      [null, 1000n],
      ["paid", 50n],
    ]);
    await expectError(alertCall(s.app.port, read.key, "setAlert", { customerId: "al-1", threshold: 1n }), "permission_denied");

    expect(await alertCall(s.app.port, s.apiKey, "deleteAlert", { customerId: "al-1", creditType: "paid" })).toEqual({ deleted: true });
    expect(await alertCall(s.app.port, s.apiKey, "deleteAlert", { customerId: "al-1", creditType: "paid" })).toEqual({ deleted: false });
    const left = (await listAlerts(s.apiKey, "al-1")) as { alerts: unknown[] };
    expect(left.alerts).toHaveLength(1);
  });

  it("refuses a customer's alert past ALERTS_PER_CUSTOMER_MAX, on both transports, but replaces one and takes a new one after a delete", async () => {
    await deposit("al-many", 10n);
    const setFor = (creditType: string | null) =>
      alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-many", threshold: 5n, ...(creditType === null ? {} : { creditType }) });
    await setFor(null);
    for (let i = 1; i < ALERTS_PER_CUSTOMER_MAX; i++) await setFor(`t${i}`);
    const message = `This customer has ${ALERTS_PER_CUSTOMER_MAX} alerts, the most a customer may have; delete one first.`;
    expect(await expectError(setFor("one-more"), "invalid_argument", message)).toEqual({
      field: "credit_type",
      alerts_per_customer_max: String(ALERTS_PER_CUSTOMER_MAX),
    });
    expectHttpError(await http.post("/v1/alerts", { customer_id: "al-many", credit_type: "one-more", threshold: 5 }), "invalid_argument", {
      message,
      details: { field: "credit_type", alerts_per_customer_max: ALERTS_PER_CUSTOMER_MAX },
    });
    expect(((await setFor("t7")) as { created: boolean }).created).toBe(false);
    expect(((await setFor(null)) as { created: boolean }).created).toBe(false);
    expect(await alertCall(s.app.port, s.apiKey, "deleteAlert", { customerId: "al-many", creditType: "t7" })).toEqual({ deleted: true });
    expect(((await setFor("one-more")) as { created: boolean }).created).toBe(true);
  });

  it("refuses an unknown customer, a bad threshold and a bad credit type; another project sees none", async () => {
    await expectError(alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-nobody", threshold: 5n }), "customer_not_found");
    await deposit("al-2", 10n);
    await expectError(
      alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-2", threshold: 0n }),
      "amount_must_be_positive",
      "threshold must be at least 1.",
    );
    await expectError(
      alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-2", threshold: 10n ** 15n + 1n }),
      "invalid_argument",
      "threshold must be at most 1000000000000000.",
    );
    await expectError(
      alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-2", creditType: "BAD", threshold: 5n }),
      "invalid_credit_types",
      undefined,
      {
        messageFree: true,
      },
    );
    await alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-2", threshold: 5n });
    const other = await s.createKey({ project: await s.createProject() });
    expect(await listAlerts(other.key, "")).toEqual({ alerts: [], nextPageToken: "" });
    await expectError(alertCall(s.app.port, other.key, "setAlert", { customerId: "al-2", threshold: 5n }), "customer_not_found");
    const error = await listAlerts("vb_test_x", "").catch((e: ServiceError) => e);
    expect((error as ServiceError).code).toBe(16);
  });
});

describe("ListAlerts pages", () => {
  it("walks a project's alerts a page at a time on both transports, by customer then credit type; refuses a bad size or cursor", async () => {
    const project = await s.createProject();
    const key = (await s.createKey({ project })).key;
    const client = new TestClient(s.app.port, key);
    const expected: [string, string | null][] = [];
    for (const customerId of ["pg-a", "pg-b", "pg-c"]) {
      await client.call("deposit", { customerId, amount: 10n, creditType: "default" });
      for (const creditType of [null, "paid", "promo"]) {
        await alertCall(s.app.port, key, "setAlert", { customerId, threshold: 5n, ...(creditType === null ? {} : { creditType }) });
        expected.push([customerId, creditType]);
      }
    }
    const grpcWalk: [string, string | null][] = [];
    const pages: number[] = [];
    let pageToken = "";
    do {
      const page = (await listAlerts(key, "", { pageSize: 4, pageToken })) as {
        alerts: { customerId: string; creditType?: string }[];
        nextPageToken: string;
      };
      pages.push(page.alerts.length);
      grpcWalk.push(...page.alerts.map((a): [string, string | null] => [a.customerId, a.creditType ?? null]));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(grpcWalk).toEqual(expected);
    expect(pages).toEqual([4, 4, 1]);

    const httpWalk: [string, string | null][] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/v1/alerts?limit=2${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`;
      const page = ok<{ items: { customer_id: string; credit_type: string | null }[]; next_cursor: string | null; has_more: boolean }>(
        await http.get(url, { key }),
      );
      expect(page.has_more).toBe(page.next_cursor !== null);
      httpWalk.push(...page.items.map((a): [string, string | null] => [a.customer_id, a.credit_type]));
      cursor = page.next_cursor;
    } while (cursor !== null);
    expect(httpWalk).toEqual(expected);
    client.close();

    // One customer's, and the default page (100) holds them all.
    const one = (await listAlerts(key, "pg-b")) as { alerts: unknown[]; nextPageToken: string };
    expect([one.alerts.length, one.nextPageToken]).toEqual([3, ""]);
    const first = (await listAlerts(key, "", { pageSize: 1 })) as { nextPageToken: string };
    await expectError(listAlerts(key, "pg-b", { pageToken: first.nextPageToken }), "invalid_page_token");
    await expectError(listAlerts(key, "", { pageToken: "garbage" }), "invalid_page_token");
    await expectError(listAlerts(key, "", { pageSize: 101 }), "invalid_page_size");
    expectHttpError(await http.get("/v1/alerts?limit=101", { key }), "invalid_limit", { details: { field: "limit" } });
    expectHttpError(await http.get("/v1/alerts?cursor=garbage", { key }), "invalid_page_token", {
      details: { field: "cursor" },
      message: "cursor is not valid for this request.",
    });
  });
});

describe("/v1/alerts", () => {
  it("sets, lists and deletes over HTTP", async () => {
    await deposit("al-h", 30n);
    const set = ok<{ alert: Record<string, unknown>; created: boolean }>(
      await http.post("/v1/alerts", { customer_id: "al-h", threshold: 50 }),
    );
    expect(set).toEqual({
      created: true,
      alert: {
        alert_id: expect.any(String),
        customer_id: "al-h",
        credit_type: null,
        threshold: 50,
        state: "low",
        created_at: new Date(s.clock.now()).toISOString(),
        updated_at: new Date(s.clock.now()).toISOString(),
      },
    });
    const read = await s.createKey({ scope: "read" });
    const list = ok<{ items: { customer_id: string }[] }>(await http.get("/v1/alerts?customer_id=al-h", { key: read.key }));
    expect(list.items.map((a) => a.customer_id)).toEqual(["al-h"]);
    expectHttpError(await http.request("DELETE", "/v1/alerts/al-h", { key: read.key }), "permission_denied", {
      details: { required_scope: "write" },
    });
    // Labelled JSON with no body at all, as many clients send every request: a DELETE takes none.
    const json = { "content-type": "application/json" };
    expect(ok(await http.request("DELETE", "/v1/alerts/al-h", { raw: "", headers: json }))).toEqual({ deleted: true });
    expect(ok(await http.request("DELETE", "/v1/alerts/al-h"))).toEqual({ deleted: false });
    expectHttpError(await http.post("/v1/alerts", { customer_id: "al-h", threshold: 0 }), "amount_must_be_positive", {
      message: "threshold must be a positive integer.",
      details: { field: "threshold" },
    });
  });
});

describe("alerts seen by every write, whoever set them", () => {
  const flagOf = async (customerId: string) => {
    const [rows] = await s.app.database.pool.query<RowDataPacket[]>(
      "SELECT has_alerts FROM customers WHERE project_id = 1 AND customer_id = ?",
      [customerId],
    );
    return Number(rows[0]?.has_alerts);
  };
  const alertEvents = async (customerId: string) => {
    const [rows] = await s.app.database.pool.query<RowDataPacket[]>(
      "SELECT type FROM events WHERE project_id = 1 AND customer_id = ? AND type LIKE 'balance.%' ORDER BY id",
      [customerId],
    );
    return rows.map((r) => String(r.type));
  };

  it("keeps the customer's has_alerts flag with its alerts: set by the first, cleared with the last", async () => {
    await deposit("al-flag", 100n);
    expect(await flagOf("al-flag")).toBe(0);
    await alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-flag", threshold: 10n });
    await alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-flag", creditType: "paid", threshold: 10n });
    expect(await flagOf("al-flag")).toBe(1);
    expect(await alertCall(s.app.port, s.apiKey, "deleteAlert", { customerId: "al-flag" })).toEqual({ deleted: true });
    expect(await flagOf("al-flag")).toBe(1);
    expect(await alertCall(s.app.port, s.apiKey, "deleteAlert", { customerId: "al-flag", creditType: "paid" })).toEqual({ deleted: true });
    expect(await flagOf("al-flag")).toBe(0);
    expect(await alertCall(s.app.port, s.apiKey, "deleteAlert", { customerId: "al-flag", creditType: "paid" })).toEqual({ deleted: false });
  });

  it("fires an alert an older build set without the flag, once the sweeper has turned the flag on; verify names it until then", async () => {
    const customerId = "al-old-build";
    await deposit(customerId, 1000n);
    await alertCall(s.app.port, s.apiKey, "setAlert", { customerId, threshold: 500n });
    // A build before migration 0015 sets the alert row alone.
    await s.app.database.pool.query("UPDATE customers SET has_alerts = FALSE WHERE customer_id = ?", [customerId]);
    const [project] = await s.app.database.pool.query<RowDataPacket[]>("SELECT project_id FROM customers WHERE customer_id = ?", [
      customerId,
    ]);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([
      `customer ${customerId} (project ${project[0]?.project_id}): has balance alerts, but its has_alerts is off, so its writes never fire them (the sweeper turns it on within a minute)`,
    ]);
    const lines: { msg: string; customers?: number }[] = [];
    const log = pino({ level: "warn" }, { write: (line: string) => lines.push(JSON.parse(line) as { msg: string }) });
    await sweep(s.app.context, log, { alertFlags: true });
    expect(lines).toMatchObject([
      { msg: "balance alerts found on customers not flagged as having them (set by an older build); flagged them", customers: 1 },
    ]);
    expect(await flagOf(customerId)).toBe(1);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
    await s.client.call("deduct", { customerId, transactionId: "al-old-low", amount: 600n });
    expect(await alertEvents(customerId)).toEqual(["balance.low"]);
    // Nothing left to flag: no line.
    await sweep(s.app.context, log, { alertFlags: true });
    expect(lines).toHaveLength(1);
  });

  it("crosses an alert set through another instance, and on settlements that name only their hold, manual or automatic", async () => {
    const customerId = "al-elsewhere";
    await deposit(customerId, 1000n);
    await s.client.call("freeze", { customerId, transactionId: "al-e-hold", amount: 400n });
    await s.client.call("freeze", { customerId, transactionId: "al-e-auto", amount: 100n, unfreezeAfterSeconds: 60n });
    // This instance has written for the customer and knows of no alert; the other one sets it.
    const other = await s.startAnotherInstance();
    await alertCall(other.port, s.apiKey, "setAlert", { customerId, threshold: 300n });
    await s.client.call("deduct", { customerId, transactionId: "al-e-low", amount: 250n }); // 500 → 250
    expect(await alertEvents(customerId)).toEqual(["balance.low"]);
    await s.client.call("unfreeze", { transactionId: "al-e-hold" }); // 250 → 650
    expect(await alertEvents(customerId)).toEqual(["balance.low", "balance.recovered"]);
    await s.client.call("deduct", { customerId, transactionId: "al-e-low-2", amount: 400n }); // 650 → 250
    s.clock.advance(61_000);
    expect(await sweepDueHolds(s.app.context, pino({ level: "silent" }))).toBe(1); // 250 → 350
    expect(await alertEvents(customerId)).toEqual(["balance.low", "balance.recovered", "balance.low", "balance.recovered"]);
    const customer = await s.client.call("getCustomer", { customerId });
    expect(customer.balance?.available).toBe(350n);
    await s.client.call("deduct", { customerId, transactionId: "al-e-low-3", amount: 100n }); // 350 → 250
    await s.client.call("refund", { transactionId: "al-e-low-3", refundId: "al-e-refund", amount: 60n }); // 250 → 310
    await s.client.call("deduct", { customerId, transactionId: "al-e-low-4", amount: 20n }); // 310 → 290
    await deposit(customerId, 100n); // 290 → 390
    // Each names the write that crossed: the sweeper's auto-unfreeze by its hold, a refund by its
    // charge, a deposit by none.
    const [crossed] = await s.app.database.pool.query<RowDataPacket[]>(
      "SELECT type, transaction_id FROM events WHERE project_id = 1 AND customer_id = ? AND type LIKE 'balance.%' ORDER BY id",
      [customerId],
    );
    expect(crossed.map((r) => [r.type, r.transaction_id])).toEqual([
      ["balance.low", "al-e-low"],
      ["balance.recovered", "al-e-hold"],
      ["balance.low", "al-e-low-2"],
      ["balance.recovered", "al-e-auto"],
      ["balance.low", "al-e-low-3"],
      ["balance.recovered", "al-e-low-3"],
      ["balance.low", "al-e-low-4"],
      ["balance.recovered", null],
    ]);
  });
  it("fires balance.recovered when credits deposited for later start, from the sweeper's record of the start, once", async () => {
    const silent = pino({ level: "silent" });
    const customerId = "al-start";
    await deposit(customerId, 1000n);
    await alertCall(s.app.port, s.apiKey, "setAlert", { customerId, threshold: 500n });
    await s.client.call("deduct", { customerId, transactionId: "al-start-low", amount: 700n }); // 1000 → 300
    const startsAt = ts(s.clock.now() + 60_000);
    await s.client.call("deposit", { customerId, amount: 400n, startsAt });
    // A customer without alerts: its start is recorded too, and fires nothing.
    await s.client.call("deposit", { customerId: "al-start-none", amount: 5n, startsAt });
    const flags = async () => {
      const [rows] = await s.app.database.pool.query<RowDataPacket[]>(
        "SELECT a.start_recorded AS f FROM accounts a JOIN customers c ON c.id = a.customer_pk WHERE c.customer_id IN (?, ?) ORDER BY a.id",
        [customerId, "al-start-none"],
      );
      return rows.map((r) => Number(r.f));
    };
    // Recorded at the deposit when it has started, left to the sweeper when it starts later.
    expect(await flags()).toEqual([1, 0, 0]);
    expect(await sweep(s.app.context, silent)).toEqual({ settled: 0, recorded: 0, started: 0 });

    s.clock.advance(61_000);
    // The credits count from their start, with no write: the alert, still low, waits for the sweeper.
    expect((await s.client.call("getCustomer", { customerId })).balance?.available).toBe(700n);
    expect(await alertEvents(customerId)).toEqual(["balance.low"]);
    expect(await sweep(s.app.context, silent)).toEqual({ settled: 0, recorded: 0, started: 2 });
    expect(await flags()).toEqual([1, 1, 1]);
    const [recovered] = await s.app.database.pool.query<RowDataPacket[]>(
      "SELECT type, transaction_id, payload FROM events WHERE project_id = 1 AND customer_id = ? AND type LIKE 'balance.%' ORDER BY id",
      [customerId],
    );
    expect(recovered.map((r) => [r.type, r.transaction_id])).toEqual([
      ["balance.low", "al-start-low"],
      ["balance.recovered", null],
    ]);
    expect((recovered[1]?.payload as { data: unknown } | undefined)?.data).toMatchObject({
      threshold: "500",
      available_before: "300",
      available: "700",
    });
    const listed = (await listAlerts(s.apiKey, customerId)) as { alerts: { state: AlertState }[] };
    expect(listed.alerts.map((a) => a.state)).toEqual([AlertState.ALERT_STATE_ARMED]);
    expect(await alertEvents("al-start-none")).toEqual([]);

    // Once: the next sweep finds nothing, and the next write crosses nothing.
    expect(await sweep(s.app.context, silent)).toEqual({ settled: 0, recorded: 0, started: 0 });
    await deposit(customerId, 1n);
    expect(await alertEvents(customerId)).toEqual(["balance.low", "balance.recovered"]);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });
  it("decides the alerts of many customers whose credits start together, each from its own balances, in the sweeper's one list", async () => {
    const customerIds = Array.from({ length: 8 }, (_, i) => `al-starts-${i}`);
    const startsAt = ts(s.clock.now() + 60_000);
    for (const [i, customerId] of customerIds.entries()) {
      await deposit(customerId, BigInt(100 * (i + 1)));
      await alertCall(s.app.port, s.apiKey, "setAlert", { customerId, threshold: 500n });
      await s.client.call("deposit", { customerId, amount: 400n, startsAt });
    }
    s.clock.advance(61_000);
    expect(await sweep(s.app.context, pino({ level: "silent" }))).toEqual({ settled: 0, recorded: 0, started: 8 });
    const [events] = await s.app.database.pool.query<RowDataPacket[]>(
      "SELECT customer_id, type, payload FROM events WHERE project_id = 1 AND customer_id LIKE 'al-starts-%' AND type LIKE 'balance.%' ORDER BY customer_id",
    );
    // Below the threshold before (100 to 400), at or above it after: four recoveries. From 500
    // on, the alert was armed already: nothing.
    expect(
      events.map((e) => {
        const { available_before, available } = (e.payload as { data: Record<string, string> }).data;
        return [e.customer_id, e.type, available_before, available];
      }),
    ).toEqual([
      ["al-starts-0", "balance.recovered", "100", "500"],
      ["al-starts-1", "balance.recovered", "200", "600"],
      ["al-starts-2", "balance.recovered", "300", "700"],
      ["al-starts-3", "balance.recovered", "400", "800"],
    ]);
    expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
  });
  it("reports a recovery from the balance without every credit that started, when the sweeper records them over several passes", async () => {
    const customerId = "al-start-many";
    await deposit(customerId, 100n);
    await alertCall(s.app.port, s.apiKey, "setAlert", { customerId, threshold: 500n });
    const startsAt = ts(s.clock.now() + 60_000);
    const later = EXPIRY_BATCH_SIZE + 10;
    const operations = Array.from({ length: later }, (_, i) => ({
      operation: { $case: "deposit" as const, value: { customerId, amount: 100n, source: `grant-${i}`, startsAt } },
    }));
    expect((await s.client.call("batch", { operations, atomic: true })).failedIndex).toBeUndefined();
    s.clock.advance(61_000);
    // Two passes of the customer's starts (50, then 10): one event, from 100 to all of it.
    expect(await sweep(s.app.context, pino({ level: "silent" }))).toEqual({ settled: 0, recorded: 0, started: later });
    const [events] = await s.app.database.pool.query<RowDataPacket[]>(
      "SELECT type, payload FROM events WHERE project_id = 1 AND customer_id = ? AND type LIKE 'balance.%' ORDER BY id",
      [customerId],
    );
    // The alert was set low (100 < 500), with no event: the recovery is the only one.
    expect(events.map((e) => [e.type, (e.payload as { data: { available_before: string; available: string } }).data])).toEqual([
      ["balance.recovered", expect.objectContaining({ available_before: "100", available: String(100 + 100 * later) })],
    ]);
  });
});
