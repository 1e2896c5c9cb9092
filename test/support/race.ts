import { setTimeout as sleep } from "node:timers/promises";
import type { Connection, RowDataPacket } from "mysql2/promise";
import { waitFor } from "./waiting.js";

/**
 * The connections whose transactions wait for a lock that `holder`'s open transaction holds (a
 * row it locked with `… FOR UPDATE`, or the gap before a key it looked for so). InnoDB refreshes
 * what INNODB_TRX and INNODB_LOCK_WAITS show only when they were not read for 100 ms, so each read
 * first lets 150 ms pass: a reader polling faster would never see a change.
 */
export async function lockWaitersOf(holder: Connection): Promise<number[]> {
  await sleep(150);
  // By connection: MariaDB shows a transaction that has only read (under shared locks) with trx_id 0.
  const [rows] = await holder.query<RowDataPacket[]>(
    `SELECT DISTINCT t.trx_mysql_thread_id AS id FROM information_schema.INNODB_TRX t
     JOIN information_schema.INNODB_LOCK_WAITS w ON w.requested_lock_id = t.trx_requested_lock_id
     JOIN information_schema.INNODB_TRX h ON h.trx_id = w.blocking_trx_id
     WHERE t.trx_state = 'LOCK WAIT' AND h.trx_mysql_thread_id = CONNECTION_ID()`,
  );
  return rows.map((row) => Number(row.id));
}

/** Resolves once exactly `n` transactions wait for `holder`'s locks; throws naming `what` after 30 s. */
export function untilLockWaiters(holder: Connection, n: number, what: string): Promise<void> {
  return waitFor(async () => (await lockWaitersOf(holder)).length === n, what);
}
