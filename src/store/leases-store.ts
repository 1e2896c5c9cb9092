import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { ResultSetHeader } from "mysql2/promise";
import type { ConnectionSource } from "./cluster-pool.js";
import { isRetryableConflict } from "./sql-errors.js";

/**
 * Leases: one committed row per name in `leases`, with an owner and an expiry on the database's
 * clock (so instances whose clocks differ agree on it), for whatever one instance of a deployment
 * must do alone: the migrations and the first key at start (`withLease`), the event stamper and
 * the NATS publisher while running (LeaseKeeper). GET_LOCK and FOR UPDATE hold on one Galera node
 * only; a committed row is seen by every node. Each statement commits on its own: two nodes taking
 * one lease at once conflict at certification, the loser's statement fails as a deadlock and it
 * simply does not hold the lease.
 *
 * The table must exist before the migrations run, since this lease protects them: it is created
 * here with exactly the definition migration 0012 gave it, and 0012 says IF NOT EXISTS (drizzle's
 * migrator never re-runs or re-hashes an applied migration, so databases that ran the earlier text
 * are unaffected). Migration 0016 drops `service_leases`, the table of an earlier second mechanism.
 */
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS \`leases\` (
	\`name\` varchar(64) NOT NULL,
	\`owner\` varchar(128) NOT NULL,
	\`expires_at\` datetime(3) NOT NULL,
	CONSTRAINT \`leases_name\` PRIMARY KEY(\`name\`)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`;

/** withLease: a live holder renews long before expiry; a crashed one's lease is taken over after it. */
const ONE_TIME_TTL_MS = 30_000;
const RENEW_EVERY_MS = 10_000;
const POLL_MS = 250;
/** How often a start waiting for another instance's lease says so. */
const WAITING_SAID_EVERY_MS = 60_000;

/** LeaseWait's `waiting` that logs one warning line naming what the holder is doing, how long, and who holds it. */
export const waitingLine =
  (log: { warn(facts: object, message: string): void }, work: string) =>
  (waitedMs: number, holder: string | null): void =>
    log.warn({ waitedS: Math.round(waitedMs / 1000), holder }, `waiting for another instance to finish ${work} (its lease is alive)`);

/** How a start waits for another instance's lease. */
export interface LeaseWait {
  /** Told every `saidEveryMs` (a minute) of the wait, with the holder (host:pid:tag). */
  readonly waiting?: ((waitedMs: number, holder: string | null) => void) | undefined;
  readonly saidEveryMs?: number;
  /** Ends the wait, its reason thrown (a stop asked for while starting). */
  readonly signal?: AbortSignal | undefined;
}

const expiry = (ttlMs: number) => Math.max(1, Math.trunc(ttlMs)) * 1000;

/** Who holds a lease: host, process, and a random tag (per start, or per withLease). */
export const leaseOwnerId = (): string => `${hostname().slice(0, 64)}:${process.pid}:${randomBytes(6).toString("hex")}`;

/**
 * Takes the lease when it is free or expired, or renews it when `owner` holds it; true when
 * `owner` holds it afterwards.
 */
export async function tryAcquireLease(pool: ConnectionSource, name: string, owner: string, ttlMs: number): Promise<boolean> {
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

/** Who holds the lease `name` now (host:pid:tag), if anyone. */
export async function leaseHolder(pool: ConnectionSource, name: string): Promise<string | null> {
  const [rows] = await pool.query("SELECT owner FROM leases WHERE name = ?", [name]);
  return (rows as Array<{ owner: string }>)[0]?.owner ?? null;
}

/** Gives the lease up (when `owner` still holds it), so another instance takes over at once. */
export async function releaseLease(pool: ConnectionSource, name: string, owner: string): Promise<void> {
  await pool.query("DELETE FROM leases WHERE name = ? AND owner = ?", [name, owner]);
}

/**
 * Runs `work` while holding the lease `name`, so instances starting together take turns on
 * one-time work (migrations, the first key): waits until the lease is free or expired, renews it
 * while `work` runs and gives it up after. The wait has no limit of its own: a live holder renews
 * its lease for as long as its work takes (a migration copying a large table may take many
 * minutes), and a crashed one's expires within ONE_TIME_TTL_MS. `wait.waiting` is told every
 * minute of the wait. The wait ends when `wait.signal` aborts (a stop asked for while starting),
 * with its reason thrown; once the lease is taken, `work` runs to its end. The renewals need a
 * connection besides the one `work` may hold for its whole run.
 */
export async function withLease<T>(pool: ConnectionSource, name: string, work: () => Promise<T>, wait: LeaseWait = {}): Promise<T> {
  const { waiting = () => {}, saidEveryMs = WAITING_SAID_EVERY_MS, signal } = wait;
  await pool.query(CREATE_TABLE);
  const owner = leaseOwnerId();
  const startedAt = Date.now();
  let saidAt = startedAt;
  for (;;) {
    signal?.throwIfAborted();
    if (await tryAcquireLease(pool, name, owner, ONE_TIME_TTL_MS)) break;
    if (Date.now() - saidAt >= saidEveryMs) {
      saidAt = Date.now();
      waiting(saidAt - startedAt, await leaseHolder(pool, name));
    }
    await sleep(POLL_MS);
  }
  let renewing: Promise<unknown> = Promise.resolve();
  const renewal = setInterval(() => {
    renewing = tryAcquireLease(pool, name, owner, ONE_TIME_TTL_MS).catch(() => false);
  }, RENEW_EVERY_MS);
  renewal.unref();
  try {
    return await work();
  } finally {
    clearInterval(renewal);
    // A renewal still in flight would otherwise insert the row again after the release.
    await renewing;
    await releaseLease(pool, name, owner).catch(() => undefined);
  }
}
