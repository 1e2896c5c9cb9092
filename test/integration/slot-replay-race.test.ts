import { setTimeout as sleep } from "node:timers/promises";
import mysql, { type Connection, type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import { verifyPools } from "../../src/operations/slots/verify-pools.js";
import { uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { slotClientsFor } from "../support/slot-clients.js";

// The same slot write sent to two instances on one database at the same moment, the overlap made
// certain: a raw connection holds the customer's row until both calls wait for it in their
// prefetch, then lets go. Whichever locks first writes; the other reads what it wrote under the
// same lock and answers it as a replay: never an error, and never a retry (a keyed write that
// read its stored outcome before the lock would find the key taken only at its insert).
const ROUNDS = 20;

let s: TestServer;
let other: App;
let first: ReturnType<typeof slotClientsFor>;
let second: ReturnType<typeof slotClientsFor>;
let holder: Connection;

beforeAll(async () => {
  s = await startTestServer();
  other = await s.startAnotherInstance();
  first = slotClientsFor(s.app.port, s.apiKey);
  second = slotClientsFor(other.port, s.apiKey);
  holder = await mysql.createConnection(s.databaseUrl);
});

afterAll(async () => {
  first?.close();
  second?.close();
  await holder?.end();
  await s?.stop();
});

/** Connections of this database waiting for a customer's row in a slot prefetch (a Grant's upsert, or the lock). */
async function waitingForCustomer(): Promise<number> {
  const [rows] = await holder.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
     WHERE DB = DATABASE() AND ID <> CONNECTION_ID()
       AND (INFO LIKE 'INSERT INTO \`customers\`%' OR INFO LIKE 'SELECT c.id AS c_pk FROM \`customers\` c%FOR UPDATE')`,
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
async function race(
  customerPk: string,
  call: (slots: ReturnType<typeof slotClientsFor>["slots"]) => Promise<{ isIdempotentReplay: boolean; holdingId?: string }>,
): Promise<{ outcomes: Outcome[]; holdingIds: string[] }> {
  await holder.query("BEGIN");
  await holder.query("SELECT id FROM customers WHERE id = ? FOR UPDATE", [customerPk]);
  const holdingIds: string[] = [];
  const calls = [first, second].map((clients) =>
    call(clients.slots).then(
      (r): Outcome => {
        if (r.holdingId !== undefined) holdingIds.push(r.holdingId);
        return r.isIdempotentReplay ? "replay" : "fresh";
      },
      (error: { details?: string; code?: number }) => `error ${error.code}: ${error.details}`,
    ),
  );
  try {
    await bothWaiting();
  } finally {
    await holder.query("ROLLBACK");
  }
  return { outcomes: await Promise.all(calls), holdingIds };
}

async function retries(): Promise<number> {
  let total = 0;
  for (const app of [s.app, other]) for (const v of (await app.metrics.retries.get()).values) total += v.value;
  return total;
}

async function customerWithPool(capacity: bigint): Promise<{ customerId: string; customerPk: string }> {
  const customerId = uid("slot-race");
  await first.slots.call("grantCapacity", { customerId, wallet: "ip", amount: capacity });
  const [rows] = await holder.query<RowDataPacket[]>("SELECT id FROM customers WHERE customer_id = ?", [customerId]);
  return { customerId, customerPk: String(rows[0]?.id) };
}

const pool = async (customerId: string) => {
  const { pools } = await first.slots.call("listPools", { customerId, wallet: "ip" });
  return pools.map((p) => [p.capacity, p.inUse]);
};

function tally(outcomes: Outcome[], into: Map<Outcome, number>): void {
  for (const o of outcomes) into.set(o, (into.get(o) ?? 0) + 1);
}

describe("a slot write sent to two instances at once", () => {
  for (const kind of ["grantCapacity", "revokeCapacity"] as const) {
    it(`answers one keyed ${kind} fresh and the other as its replay, read under the lock, ${ROUNDS} rounds`, async () => {
      const { customerId, customerPk } = await customerWithPool(1_000n);
      const before = await retries();
      const outcomes = new Map<Outcome, number>();
      for (let round = 0; round < ROUNDS; round++) {
        const idempotencyKey = uid("key");
        const { outcomes: pair } = await race(customerPk, (slots) =>
          slots.call(kind, { customerId, wallet: "ip", amount: 3n, idempotencyKey }),
        );
        tally(pair, outcomes);
      }
      expect(Object.fromEntries(outcomes)).toEqual({ fresh: ROUNDS, replay: ROUNDS });
      const moved = 3n * BigInt(ROUNDS);
      expect(await pool(customerId)).toEqual([[kind === "grantCapacity" ? 1_000n + moved : 1_000n - moved, 0n]]);
      expect(await retries()).toBe(before);
      expect((await verifyPools(s.app.database.db)).problems).toEqual([]);
    });
  }

  it(`claims one resource once when two claims of it meet, and releases it once, ${ROUNDS} rounds`, async () => {
    const { customerId, customerPk } = await customerWithPool(10n);
    const claims = new Map<Outcome, number>();
    const releases = new Map<Outcome, number>();
    for (let round = 0; round < ROUNDS; round++) {
      const resourceId = uid("res");
      const claimed = await race(customerPk, (slots) => slots.call("claim", { customerId, wallet: "ip", resourceId, amount: 2n }));
      tally(claimed.outcomes, claims);
      expect(new Set(claimed.holdingIds).size).toBe(1);
      const released = await race(customerPk, (slots) => slots.call("release", { customerId, wallet: "ip", resourceId }));
      tally(released.outcomes, releases);
      expect(released.holdingIds).toEqual(claimed.holdingIds);
    }
    expect(Object.fromEntries(claims)).toEqual({ fresh: ROUNDS, replay: ROUNDS });
    expect(Object.fromEntries(releases)).toEqual({ fresh: ROUNDS, replay: ROUNDS });
    expect(await pool(customerId)).toEqual([[10n, 0n]]);
    expect((await verifyPools(s.app.database.db)).problems).toEqual([]);
  });
});
