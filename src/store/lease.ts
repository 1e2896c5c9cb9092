import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { ConnectionSource } from "./cluster-pool.js";
import { driverError } from "./sql-errors.js";

/** A live holder renews its lease long before this; a crashed one's lease is taken over after it. */
const LEASE_SECONDS = 30;
const RENEW_EVERY_MS = 10_000;
const WAIT_MS_MAX = 120_000;
const POLL_MS = 250;
const DUPLICATE_KEY = 1062;
const DEADLOCK = 1213;

/**
 * The table is not a migration: the migrations lease protects the migrations themselves.
 * A row per purpose; its owner is a random id of one attempt.
 */
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS service_leases (
  purpose VARCHAR(64) NOT NULL PRIMARY KEY,
  owner CHAR(32) NOT NULL,
  expires_at DATETIME(3) NOT NULL
) ENGINE=InnoDB`;

/**
 * Runs `work` while holding the lease named `purpose`, so instances starting together take turns
 * on one-time work (migrations, the first key). The lease is a committed row (a unique INSERT
 * with owner and expiry, deleted when done): GET_LOCK and FOR UPDATE are local to one node of a
 * Galera cluster, a committed row is seen by every node. Two INSERTs racing on two nodes: one
 * wins, the other fails with a duplicate key or a certification failure and waits.
 */
export async function withLease<T>(pool: ConnectionSource, purpose: string, work: () => Promise<T>): Promise<T> {
  await pool.query(CREATE_TABLE);
  const owner = randomBytes(16).toString("hex");
  const giveUpAt = Date.now() + WAIT_MS_MAX;
  while (!(await tryAcquire(pool, purpose, owner))) {
    if (Date.now() > giveUpAt) throw new Error(`timed out waiting for the ${purpose} lease`);
    await sleep(POLL_MS);
  }
  const renewal = setInterval(() => {
    pool
      .query("UPDATE service_leases SET expires_at = NOW(3) + INTERVAL ? SECOND WHERE purpose = ? AND owner = ?", [
        LEASE_SECONDS,
        purpose,
        owner,
      ])
      .catch(() => undefined);
  }, RENEW_EVERY_MS);
  renewal.unref();
  try {
    return await work();
  } finally {
    clearInterval(renewal);
    await pool.query("DELETE FROM service_leases WHERE purpose = ? AND owner = ?", [purpose, owner]).catch(() => undefined);
  }
}

async function tryAcquire(pool: ConnectionSource, purpose: string, owner: string): Promise<boolean> {
  // A holder that crashed leaves its row behind; once expired, anyone may take the lease over.
  try {
    await pool.query("DELETE FROM service_leases WHERE purpose = ? AND expires_at < NOW(3)", [purpose]);
    await pool.query("INSERT INTO service_leases (purpose, owner, expires_at) VALUES (?, ?, NOW(3) + INTERVAL ? SECOND)", [
      purpose,
      owner,
      LEASE_SECONDS,
    ]);
    return true;
  } catch (error) {
    const errno = driverError(error)?.errno;
    if (errno === DUPLICATE_KEY || errno === DEADLOCK) return false;
    throw error;
  }
}
