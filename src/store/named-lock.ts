import { createHash } from "node:crypto";
import type { Pool } from "mysql2/promise";

const LOCK_TIMEOUT_S = 60;

/**
 * GET_LOCK names are server-wide, so a lock is named after its database and purpose: instances
 * of one database take turns, while databases sharing a server (tests, the bench) never wait on
 * each other. Hashed because MySQL caps lock names at 64 characters.
 */
const lockNameOf = (database: string, purpose: string) =>
  `velobase_${createHash("sha256").update(`${database}\0${purpose}`).digest("hex").slice(0, 40)}`;

/**
 * Runs `work` while holding a MySQL named lock (GET_LOCK), so instances starting together take
 * turns on one-time work (migrations, the first key). The lock lives on a connection of its own,
 * so the pool needs a second one for the work.
 */
export async function withNamedLock<T>(pool: Pool, database: string, purpose: string, work: () => Promise<T>): Promise<T> {
  const name = lockNameOf(database, purpose);
  const holder = await pool.getConnection();
  try {
    const [rows] = await holder.query("SELECT GET_LOCK(?, ?) AS got", [name, LOCK_TIMEOUT_S]);
    const got = (rows as Array<{ got: number | string | null }>)[0]?.got;
    if (Number(got) !== 1) throw new Error(`timed out waiting for the ${purpose} lock`);
    return await work();
  } finally {
    await holder.query("SELECT RELEASE_LOCK(?)", [name]).catch(() => undefined);
    holder.release();
  }
}
