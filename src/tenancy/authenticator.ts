import type { Logger } from "pino";
import { apiKeyModeOf, hashApiKey } from "../domain/api-key.js";
import type { Caller } from "../domain/caller.js";
import { BillingError } from "../errors/billing-error.js";
import { findApiKeyByHash, touchApiKey, type ApiKeyRecord } from "../store/api-keys-store.js";
import type { Database } from "../store/database.js";
import { runQuery } from "../store/run-transaction.js";

/** A key's project's token bucket: calls per second (0 = unlimited) and burst. */
export interface RateLimit {
  readonly ratePerSecond: number;
  readonly burst: number;
}

/** An authenticated caller, with what the rate limiter needs. */
export interface AuthenticatedCaller extends Caller {
  readonly apiKeyId: bigint;
  readonly keyPrefix: string;
  readonly rateLimit: RateLimit;
}

/** How long a key look-up is trusted: also the longest a revoke takes to reach every instance. */
export const API_KEY_CACHE_TTL_MS_DEFAULT = 5_000;
/** last_used_at is written at most this often per key and instance, never once per call. */
export const LAST_USED_INTERVAL_MS = 60_000;
/** Bounds the cache under a flood of distinct (mostly invalid) keys. */
export const API_KEY_CACHE_ENTRIES_MAX = 10_000;

export interface AuthenticatorOptions {
  readonly cacheTtlMs: number;
  readonly log: Logger;
  /** Wall clock (ms); the cache and last_used_at follow real time, not the billing clock. */
  readonly now?: () => number;
}

interface CacheEntry {
  readonly record: Promise<ApiKeyRecord | null>;
  readonly expiresAtMs: number;
}

/**
 * Turns a presented key into a Caller, for every transport. Look-ups (hits and misses) are
 * cached for `cacheTtlMs`, so the hot path does not query the database per call; concurrent
 * look-ups of one key share one query.
 */
export class Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly touchedAtMs = new Map<bigint, number>();
  private readonly now: () => number;

  constructor(
    private readonly database: Database,
    private readonly options: AuthenticatorOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Throws missing_api_key, invalid_api_key or api_key_revoked (service_unavailable if the database is down). */
  async authenticate(presented: string | null): Promise<AuthenticatedCaller> {
    if (presented === null || presented === "") throw new BillingError("missing_api_key");
    // The format check costs no query: random text never reaches the database.
    if (apiKeyModeOf(presented) === null) throw new BillingError("invalid_api_key");
    return this.authenticateHash(hashApiKey(presented));
  }

  /**
   * The caller of a key known by its stored hash (a console session's), through the same cache:
   * a revoked key is refused within cacheTtlMs.
   */
  async authenticateHash(keyHash: string): Promise<AuthenticatedCaller> {
    const record = await this.lookUp(keyHash);
    if (!record) throw new BillingError("invalid_api_key");
    if (record.revokedAtMs !== null) throw new BillingError("api_key_revoked");
    this.touch(record.id);
    return {
      projectId: record.projectId,
      apiKeyId: record.id,
      scope: record.scope,
      keyPrefix: record.prefix,
      rateLimit: { ratePerSecond: record.ratePerSecond, burst: record.burst },
    };
  }

  private lookUp(keyHash: string): Promise<ApiKeyRecord | null> {
    const nowMs = this.now();
    const cached = this.cache.get(keyHash);
    if (cached && cached.expiresAtMs > nowMs) return cached.record;
    const record = runQuery(() => findApiKeyByHash(this.database.db, keyHash));
    if (this.options.cacheTtlMs > 0) {
      this.evictIfFull(nowMs);
      this.cache.set(keyHash, { record, expiresAtMs: nowMs + this.options.cacheTtlMs });
      // A failed look-up (database down) is not remembered: the next call tries again.
      record.catch(() => {
        if (this.cache.get(keyHash)?.record === record) this.cache.delete(keyHash);
      });
    }
    return record;
  }

  private evictIfFull(nowMs: number): void {
    if (this.cache.size < API_KEY_CACHE_ENTRIES_MAX) return;
    for (const [hash, entry] of this.cache) if (entry.expiresAtMs <= nowMs) this.cache.delete(hash);
    // Still full of live entries: drop the oldest (Map keeps insertion order).
    for (const hash of this.cache.keys()) {
      if (this.cache.size < API_KEY_CACHE_ENTRIES_MAX) break;
      this.cache.delete(hash);
    }
  }

  /** Records use without a write per call: at most once per LAST_USED_INTERVAL_MS, off the call's path. */
  private touch(apiKeyId: bigint): void {
    const nowMs = this.now();
    const last = this.touchedAtMs.get(apiKeyId);
    if (last !== undefined && nowMs - last < LAST_USED_INTERVAL_MS) return;
    this.touchedAtMs.set(apiKeyId, nowMs);
    // Drizzle's error text carries the SQL parameters, which are never logged: only the kind.
    touchApiKey(this.database.db, apiKeyId, nowMs).catch((error: unknown) =>
      this.options.log.warn({ error: error instanceof Error ? error.name : "unknown" }, "could not record an API key's last use"),
    );
  }
}
