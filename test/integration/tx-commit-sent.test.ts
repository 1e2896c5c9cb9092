import mysql, { type Pool } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "../../src/store/sql.js";
import { Tx } from "../../src/store/run-transaction.js";
import { isConnectionFailure } from "../../src/store/sql-errors.js";
import { TcpProxy } from "../support/tcp-proxy.js";

// Whether a failed transaction may have committed decides whether it runs again. On Galera each
// statement is its own round trip, so only the one carrying COMMIT may have: a round trip that
// hangs before it leaves nothing committed. The server "hangs" behind a proxy that freezes.

const proxy = new TcpProxy(3306);
let pool: Pool;

beforeAll(async () => {
  const port = await proxy.start();
  pool = mysql.createPool({ host: "127.0.0.1", port, user: "root", multipleStatements: true, connectionLimit: 2 });
});

afterAll(async () => {
  proxy.thaw();
  await pool?.end();
  await proxy.cut();
});

/** A fresh Galera-style transaction (a statement a round trip, 500 ms each at most), its server frozen at `freezeAt`. */
async function frozenAt(freezeAt: "first round trip" | "COMMIT"): Promise<{ error: unknown; commitSent: boolean }> {
  const connection = await pool.getConnection();
  const tx = new Tx(connection, true, 500);
  try {
    // Frozen at COMMIT: the statements went first, the COMMIT alone is what hangs.
    if (freezeAt === "COMMIT") await tx.run([sql`SELECT 1`]);
    proxy.freeze();
    const error = await tx.run(freezeAt === "COMMIT" ? [] : [sql`SELECT 2`], { commit: true }).then(
      () => null,
      (e: unknown) => e,
    );
    return { error, commitSent: tx.isCommitSent };
  } finally {
    proxy.thaw();
    connection.destroy();
  }
}

describe("a one-step transaction on Galera whose server stops answering", () => {
  it("has not sent its COMMIT when its first statement hangs: it may run again", async () => {
    const { error, commitSent } = await frozenAt("first round trip");
    expect(isConnectionFailure(error)).toBe(true);
    expect(commitSent).toBe(false);
  });

  it("has, when the COMMIT's own round trip hangs: its outcome is unknown", async () => {
    const { error, commitSent } = await frozenAt("COMMIT");
    expect(isConnectionFailure(error)).toBe(true);
    expect(commitSent).toBe(true);
  });
});
