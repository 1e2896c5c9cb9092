import type { Pool, ResultSetHeader } from "mysql2/promise";
import { isRetryableConflict } from "./sql-errors.js";

/**
 * Leases: one committed row per elected singleton (the event stamper, the NATS publisher), with
 * an owner and an expiry on the database's clock, so instances whose clocks differ agree on it.
 * Each statement commits on its own. On Galera two nodes taking one lease at once conflict at
 * certification: the loser's statement fails as a deadlock and it simply does not hold the lease.
 */

const expiry = (ttlMs: number) => Math.max(1, Math.trunc(ttlMs)) * 1000;

/**
 * Takes the lease when it is free or expired, or renews it when `owner` holds it; true when
 * `owner` holds it afterwards.
 */
export async function tryAcquireLease(pool: Pool, name: string, owner: string, ttlMs: number): Promise<boolean> {
  try {
    const [renewed] = await pool.query<ResultSetHeader>(
      `UPDATE leases SET owner = ?, expires_at = NOW(3) + INTERVAL ? MICROSECOND
        WHERE name = ? AND (owner = ? OR expires_at < NOW(3))`,
      [owner, expiry(ttlMs), name, owner],
    );
    if (renewed.affectedRows === 1) return true;
    const [inserted] = await pool.query<ResultSetHeader>(
      "INSERT IGNORE INTO leases (name, owner, expires_at) VALUES (?, ?, NOW(3) + INTERVAL ? MICROSECOND)",
      [name, owner, expiry(ttlMs)],
    );
    return inserted.affectedRows === 1;
  } catch (error) {
    if (isRetryableConflict(error)) return false;
    throw error;
  }
}

/** Gives the lease up (when `owner` still holds it), so another instance takes over at once. */
export async function releaseLease(pool: Pool, name: string, owner: string): Promise<void> {
  await pool.query("DELETE FROM leases WHERE name = ? AND owner = ?", [name, owner]);
}
