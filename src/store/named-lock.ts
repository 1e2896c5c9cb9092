import type { Pool } from "mysql2/promise";

const LOCK_TIMEOUT_S = 60;

/**
 * Runs `work` while holding a MySQL named lock (GET_LOCK), so instances starting together take
 * turns on one-time work (migrations, the first key). The lock lives on a connection of its own,
 * so the pool needs a second one for the work.
 */
export async function withNamedLock<T>(pool: Pool, name: string, work: () => Promise<T>): Promise<T> {
  const holder = await pool.getConnection();
  try {
    const [rows] = await holder.query("SELECT GET_LOCK(?, ?) AS got", [name, LOCK_TIMEOUT_S]);
    const got = (rows as Array<{ got: number | string | null }>)[0]?.got;
    if (Number(got) !== 1) throw new Error(`timed out waiting for the lock ${name}`);
    return await work();
  } finally {
    await holder.query("SELECT RELEASE_LOCK(?)", [name]).catch(() => undefined);
    holder.release();
  }
}
