import { setTimeout as sleep } from "node:timers/promises";
import type { Connection, PoolConnection, RowDataPacket } from "mysql2/promise";

/** Polls `condition` every 10 ms until it holds; throws naming `what` after 30 s. */
export async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(10)) {
    if (await condition()) return;
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Whether `atLeast` other connections of `connection`'s database are inside a locking read (`… FOR UPDATE`): waiting on a lock. */
export async function lockingReadWaits(connection: Connection, atLeast = 1): Promise<boolean> {
  const [rows] = await connection.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
     WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND INFO LIKE '%FOR UPDATE%'`,
  );
  return Number(rows[0]?.n ?? 0) >= atLeast;
}

/**
 * Holds a customer's row (of project 1) from a connection of `pool`, as another instance's
 * transaction would, so that a call for that customer waits inside its transaction; COMMIT and
 * release the connection to let it go.
 */
export async function holdCustomer(pool: { getConnection(): Promise<PoolConnection> }, customerId: string): Promise<PoolConnection> {
  const holder = await pool.getConnection();
  await holder.query("BEGIN");
  await holder.query("SELECT id FROM customers WHERE project_id = 1 AND customer_id = ? FOR UPDATE", [customerId]);
  return holder;
}
