import mysql from "mysql2/promise";
import { describe, expect, it } from "vitest";
import { BillingError } from "../../src/errors/billing-error.js";
import { isLostConnection, translateStoreError } from "../../src/store/run-transaction.js";
import { isConnectionFailure, retryableConflictOf } from "../../src/store/sql-errors.js";
import { SERVER_URL, uniqueDatabaseUrl } from "../support/database.js";
import { lockWaitersOf } from "../support/race.js";
import { waitFor } from "../support/waiting.js";

describe("a statement on a connection mysql2 has closed", () => {
  it("is a lost connection (fatal, without errno or code): retried before COMMIT, service_unavailable after", async () => {
    const connection = await mysql.createConnection(SERVER_URL);
    await connection.end();
    const error = await connection.query("SELECT 1").then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ message: "Can't add new command when connection is in closed state", fatal: true });
    expect(isConnectionFailure(error)).toBe(true);
    expect(isLostConnection(error)).toBe(true);
    const translated = translateStoreError(error);
    expect(translated instanceof BillingError && translated.code).toBe("service_unavailable");
  });
});

describe("MySQL 8.0.24's error for a connection it closed idle past wait_timeout (4031), told to a statement sent at that instant", () => {
  it("is a lost connection, as MariaDB's 1927, not a server_error", () => {
    // As mysql2 reports it when the error packet reaches a statement instead of the idle connection.
    const error = Object.assign(new Error("The client was disconnected by the server because of inactivity."), {
      errno: 4031,
      code: "ER_CLIENT_INTERACTION_TIMEOUT",
      sqlState: "HY000",
    });
    expect(isConnectionFailure(error)).toBe(true);
    const translated = translateStoreError(error);
    expect(translated instanceof BillingError && translated.code).toBe("service_unavailable");
  });
});

describe("a deadlock on a table's AUTO-INC lock (MariaDB's innodb_autoinc_lock_mode = 1)", () => {
  it("is one: retried, as two batches creating the same new customers in other orders need", async () => {
    const db = uniqueDatabaseUrl("vb_autoinc");
    const admin = await mysql.createConnection(SERVER_URL);
    await admin.query(`CREATE DATABASE \`${db.name}\``);
    const [a, b] = await Promise.all([mysql.createConnection(db.url), mysql.createConnection(db.url)]);
    try {
      await a.query("CREATE TABLE t (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, k VARCHAR(8) NOT NULL UNIQUE)");
      const create = (k: string) => `INSERT INTO t (k) SELECT '${k}' FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM t WHERE k = '${k}')`;
      await a.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
      await b.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
      await a.query("BEGIN");
      await b.query("BEGIN");
      await a.query(create("y"));
      await b.query(create("x"));
      // b waits on a's uncommitted y inside its INSERT … SELECT, holding the AUTO-INC lock; a's
      // next INSERT … SELECT waits for that lock: a cycle, and one of them is its victim.
      const [[{ id: bId }]] = (await b.query("SELECT CONNECTION_ID() AS id")) as unknown as [[{ id: number }]];
      let bDone = false;
      const fromB = b.query(create("y")).then(
        () => null,
        (e: unknown) => e,
      );
      void fromB.finally(() => {
        bDone = true;
      });
      // lockWaitersOf reads InnoDB's lock tables no faster than they refresh (every 100 ms).
      await waitFor(async () => bDone || (await lockWaitersOf(a)).includes(bId), "b's INSERT … SELECT to wait on a's row");
      const fromA = await a.query(create("x")).then(
        () => null,
        (e: unknown) => e,
      );
      const victims = [fromA, await fromB].filter((e) => e !== null);
      expect(victims).toHaveLength(1);
      // MariaDB's answer to its victim (MySQL 8's default interleaved mode takes no such lock).
      expect((victims[0] as { errno?: number }).errno).toBe(1467);
      expect(retryableConflictOf(victims[0])).toBe("deadlock");
    } finally {
      await Promise.all([a.end(), b.end()]);
      await admin.query(`DROP DATABASE \`${db.name}\``);
      await admin.end();
    }
  });
});
