import type { RowDataPacket } from "mysql2/promise";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { startApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { sweep } from "../../src/operations/sweeper.js";
import { databaseMigratedThrough, uniqueDatabaseUrl } from "../support/database.js";

// A database from before the sweeper recorded starts (migrations up to 0018): migration 0019
// marks the accounts that have started as recorded and the ones still to start as not, so an
// alert left low by an old build recovers when the later credits start, and an account that an
// old build inserts afterwards (no start_recorded in its INSERT) is looked at once.
const LAST_MIGRATION_BEFORE_STARTS = 18;
const HOUR = 3_600_000;

const db = uniqueDatabaseUrl("vb_upgrade_starts");
afterAll(async () => {
  await db.drop();
});

const NO_EXPIRY_MS = 253402300800000;

async function migrateBeforeStarts(startsLaterMs: number): Promise<void> {
  const connection = await databaseMigratedThrough(db, LAST_MIGRATION_BEFORE_STARTS);
  try {
    // 100 credits since long ago, 60 of them used, and 400 more from `startsLaterMs`; an alert at
    // 200 left low (40 available) by the old build.
    await connection.query(
      `INSERT INTO customers (id, project_id, customer_id, metadata, created_at, has_alerts) VALUES (7, 1, 'old-cust', '{}', UTC_TIMESTAMP(3), TRUE);
       INSERT INTO accounts (id, project_id, customer_pk, credit_type, source, starts_at_ms, expires_at_ms, total, used, created_at)
         VALUES (9, 1, 7, 'default', 'default', 0, ?, 100, 60, UTC_TIMESTAMP(3)),
                (10, 1, 7, 'default', 'later', ?, ?, 400, 0, UTC_TIMESTAMP(3));
       INSERT INTO balance_alerts (project_id, customer_id, credit_type, threshold, state, created_at, updated_at)
         VALUES (1, 'old-cust', '', 200, 'low', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3));`,
      [NO_EXPIRY_MS, startsLaterMs, NO_EXPIRY_MS],
    );
  } finally {
    await connection.end();
  }
}

describe("upgrading a database from before the sweeper recorded starts", () => {
  it("leaves the accounts still to start for the sweeper, whose record of the start fires the alert's recovery", async () => {
    const startsLaterMs = Date.now() + HOUR;
    await migrateBeforeStarts(startsLaterMs);
    let nowMs = Date.now();
    const app = await startApp(
      loadConfig({ DATABASE_URL: db.url, GRPC_HOST: "127.0.0.1", GRPC_PORT: "0", HTTP_PORT: "0", SWEEP_INTERVAL_MS: "0" }),
      { log: pino({ level: "silent" }), announce: () => undefined, now: () => nowMs },
    );
    const silent = pino({ level: "silent" });
    const flags = async () => {
      const [rows] = await app.database.pool.query<RowDataPacket[]>("SELECT id, start_recorded AS f FROM accounts ORDER BY id");
      return rows.map((r) => [Number(r.id), Number(r.f)]);
    };
    try {
      expect(await flags()).toEqual([
        [9, 1],
        [10, 0],
      ]);
      // An old build's INSERT names no start_recorded: the column's default leaves it to the sweeper.
      await app.database.pool.query(
        `INSERT INTO accounts (id, project_id, customer_pk, credit_type, source, starts_at_ms, expires_at_ms, total, created_at)
         VALUES (11, 1, 7, 'default', 'old-build', 0, ?, 0, UTC_TIMESTAMP(3))`,
        [NO_EXPIRY_MS],
      );
      // Account 11 has started: recorded, with the alert still low (40 available); 10 has not.
      expect(await sweep(app.context, silent)).toEqual({ settled: 0, recorded: 0, started: 1 });
      expect(await flags()).toEqual([
        [9, 1],
        [10, 0],
        [11, 1],
      ]);
      nowMs = startsLaterMs + 1;
      expect(await sweep(app.context, silent)).toEqual({ settled: 0, recorded: 0, started: 1 });
      const [events] = await app.database.pool.query<RowDataPacket[]>("SELECT type, customer_id FROM events ORDER BY id");
      expect(events.map((e) => [e.type, e.customer_id])).toEqual([["balance.recovered", "old-cust"]]);
      const [alerts] = await app.database.pool.query<RowDataPacket[]>("SELECT state FROM balance_alerts");
      expect(alerts.map((a) => a.state)).toEqual(["armed"]);
    } finally {
      await app.stop();
    }
  });
});
