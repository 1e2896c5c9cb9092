import { setTimeout as sleep } from "node:timers/promises";
import mysql, { type Connection, type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLedger } from "../../src/operations/verify.js";
import { TestClient } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

// The same Consume (or Unfreeze) sent to two instances on one database at the same moment: the
// overlap is made certain, not lucky. A raw connection holds the customer's row until both calls
// wait for it in their prefetch; then it lets go. Whichever locks first settles the hold; the
// other must read that outcome under the same lock and answer it as a replay, never
// freeze_records_inconsistent.
const ROUNDS = 40;

let s: TestServer;
let second: TestClient;
let holder: Connection;

beforeAll(async () => {
  s = await startTestServer();
  const other = await s.startAnotherInstance();
  second = new TestClient(other.port, s.apiKey);
  holder = await mysql.createConnection(s.databaseUrl);
});

afterAll(async () => {
  second?.close();
  await holder?.end();
  await s?.stop();
});

/** Connections of this database waiting in the prefetch's customer lock. */
async function waitingForCustomer(): Promise<number> {
  const [rows] = await holder.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
     WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND INFO LIKE 'SELECT c.id AS c_pk, c.project_id AS c_project_id%FOR UPDATE'`,
  );
  return Number(rows[0]?.n ?? 0);
}

async function bothWaiting(): Promise<void> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(5)) {
    if ((await waitingForCustomer()) === 2) return;
  }
  throw new Error("timed out waiting for both calls to wait on the customer's lock");
}

type Outcome = "fresh" | "replay" | string;

/** Sends `call` to both instances while the customer's row is held, then lets both through. */
async function race(customerPk: string, call: (client: TestClient) => Promise<{ isIdempotentReplay: boolean }>): Promise<Outcome[]> {
  await holder.query("BEGIN");
  await holder.query("SELECT id FROM customers WHERE id = ? FOR UPDATE", [customerPk]);
  const calls = [s.client, second].map((client) =>
    call(client).then(
      (r): Outcome => (r.isIdempotentReplay ? "replay" : "fresh"),
      (error: { details?: string; code?: number }) => `error ${error.code}: ${error.details}`,
    ),
  );
  try {
    await bothWaiting();
  } finally {
    await holder.query("ROLLBACK");
  }
  return Promise.all(calls);
}

async function customerWithCredits(): Promise<{ customerId: string; customerPk: string }> {
  const customerId = uid("race");
  await s.client.call("deposit", { customerId, amount: 1_000_000n });
  const [rows] = await holder.query<RowDataPacket[]>("SELECT id FROM customers WHERE customer_id = ?", [customerId]);
  return { customerId, customerPk: String(rows[0]?.id) };
}

describe("a settlement sent to two instances at once", () => {
  for (const kind of ["consume", "unfreeze"] as const) {
    for (const named of [true, false]) {
      it(`answers one ${kind} fresh and the other as its replay, ${ROUNDS} rounds, ${named ? "with" : "without"} customer_id`, async () => {
        const { customerId, customerPk } = await customerWithCredits();
        const tally = new Map<Outcome, number>();
        for (let round = 0; round < ROUNDS; round++) {
          const transactionId = uid("hold");
          await s.client.call("freeze", { customerId, transactionId, amount: 10n });
          const scope = named ? { customerId } : {};
          const outcomes = await race(customerPk, (client) =>
            kind === "consume"
              ? client.call("consume", { transactionId, actualAmount: 4n, ...scope })
              : client.call("unfreeze", { transactionId, ...scope }),
          );
          for (const o of outcomes) tally.set(o, (tally.get(o) ?? 0) + 1);
        }
        expect(Object.fromEntries(tally)).toEqual({ fresh: ROUNDS, replay: ROUNDS });
        const balance = (await s.client.call("getCustomer", { customerId })).balance;
        const used = kind === "consume" ? 4n * BigInt(ROUNDS) : 0n;
        expect(balance).toEqual({ total: 1_000_000n, used, frozen: 0n, available: 1_000_000n - used });
        expect((await verifyLedger(s.app.database.db)).problems).toEqual([]);
      });
    }
  }
});
