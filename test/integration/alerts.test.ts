import type { ServiceError } from "@grpc/grpc-js";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AlertState } from "../../gen/velobase/billing/v1/alerts.js";
import { crossings, finalStates } from "../../src/domain/balance-alerts.js";
import { loadAlertsWithAvailable, loadCustomerAlerts, lockCustomerAvailable, updateAlertStatesSql } from "../../src/store/alerts-store.js";
import { runTransaction } from "../../src/store/run-transaction.js";
import { expectError } from "../support/client.js";
import { alertCall } from "../support/events.js";
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

    const read = await s.createKey({ scope: "read" });
    const listed = (await alertCall(s.app.port, read.key, "listAlerts", { customerId: "al-1" })) as {
      alerts: { creditType?: string; threshold: bigint }[];
    };
    expect(listed.alerts.map((a) => [a.creditType ?? null, a.threshold])).toEqual([
      [null, 1000n],
      ["paid", 50n],
    ]);
    await expectError(alertCall(s.app.port, read.key, "setAlert", { customerId: "al-1", threshold: 1n }), "permission_denied");

    expect(await alertCall(s.app.port, s.apiKey, "deleteAlert", { customerId: "al-1", creditType: "paid" })).toEqual({ deleted: true });
    expect(await alertCall(s.app.port, s.apiKey, "deleteAlert", { customerId: "al-1", creditType: "paid" })).toEqual({ deleted: false });
    const left = (await alertCall(s.app.port, s.apiKey, "listAlerts", { customerId: "al-1" })) as { alerts: unknown[] };
    expect(left.alerts).toHaveLength(1);
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
    expect(await alertCall(s.app.port, other.key, "listAlerts", { customerId: "" })).toEqual({ alerts: [] });
    await expectError(alertCall(s.app.port, other.key, "setAlert", { customerId: "al-2", threshold: 5n }), "customer_not_found");
    const error = await alertCall(s.app.port, "vb_test_x", "listAlerts", { customerId: "" }).catch((e: ServiceError) => e);
    expect((error as ServiceError).code).toBe(16);
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
    expect(ok(await http.request("DELETE", "/v1/alerts/al-h"))).toEqual({ deleted: true });
    expectHttpError(await http.post("/v1/alerts", { customer_id: "al-h", threshold: 0 }), "amount_must_be_positive", {
      details: { field: "threshold" },
    });
  });
});

describe("what the pipeline calls under the customer's lock", () => {
  it("concurrent writes crossing one threshold decide exactly one balance.low", async () => {
    await deposit("al-race", 1000n);
    await alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-race", threshold: 500n });
    // 20 transactions, each as a write would: lock the customer with its balance, its alerts,
    // decide the crossing, store the state. The balance each sees is a counter moved under the
    // customer's lock (the money moves themselves are the pipeline's).
    let available = 1000n;
    const decided = await Promise.all(
      Array.from({ length: 20 }, () =>
        runTransaction(s.app.database, async (tx) => {
          const now = s.clock.now();
          await tx.runBatch(lockCustomerAvailable(1n, "al-race", now));
          const alerts = await tx.runBatch(loadCustomerAlerts(1n, "al-race"));
          const before = available;
          available -= 40n;
          const list = crossings(alerts, { all: before, byCreditType: new Map() }, { all: before - 40n, byCreditType: new Map() });
          await tx.run(updateAlertStatesSql(finalStates(list), now), { commit: true });
          return list.filter((c) => c.eventType !== null).map((c) => c.eventType);
        }),
      ),
    );
    expect(decided.flat()).toEqual(["balance.low"]);
  });

  it("loads a customer's alerts with its available balance per credit type, and nothing more without alerts", async () => {
    await deposit("al-load", 300n, "paid");
    await deposit("al-load", 50n, "free");
    await deposit("al-none", 10n);
    const load = (customerId: string) =>
      runTransaction(s.app.database, async (tx) => {
        await tx.runBatch(lockCustomerAvailable(1n, customerId, s.clock.now()));
        return tx.runBatch(
          loadAlertsWithAvailable(
            1n,
            customerId,
            sql`(SELECT id FROM customers WHERE project_id = 1 AND customer_id = ${customerId})`,
            s.clock.now(),
          ),
        );
      });
    expect(await load("al-none")).toEqual({ alerts: [], available: { all: 0n, byCreditType: new Map() } });
    await alertCall(s.app.port, s.apiKey, "setAlert", { customerId: "al-load", creditType: "paid", threshold: 100n });
    const loaded = await load("al-load");
    expect(loaded.alerts.map((a) => [a.creditType, a.threshold, a.state])).toEqual([["paid", 100n, "armed"]]);
    expect(loaded.available).toEqual({
      all: 350n,
      byCreditType: new Map([
        ["free", 50n],
        ["paid", 300n],
      ]),
    });
  });
});
