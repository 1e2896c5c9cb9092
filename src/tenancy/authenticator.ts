import type { Logger } from "pino";
import { apiKeyModeOf, hashApiKey } from "../domain/api-key.js";
import type { Caller } from "../domain/caller.js";
import { BillingError } from "../errors/billing-error.js";
import { findApiKeyByHash, touchApiKey, type ApiKeyRecord } from "../store/api-keys-store.js";
import type { Database } from "../store/database.js";
import { runQuery } from "../store/run-transaction.js";
import type { ClientAddress } from "./client-address.js";
import { PeerFailures } from "./peer-failures.js";

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
/** Bounds the cache of known keys (revoked ones included). */
export const API_KEY_CACHE_ENTRIES_MAX = 10_000;
/**
 * Keys no project has are remembered too, so a flood of made-up keys does not query the
 * database per call; apart, so that they never push a known key out. Briefly: a key just created
 * on another instance is accepted within this time.
 */
export const UNKNOWN_KEY_CACHE_TTL_MS_MAX = 1_000;
export const UNKNOWN_KEY_CACHE_ENTRIES_MAX = 10_000;

/** With no cache (API_KEY_CACHE_TTL_MS=0), a stream's key is still checked at most once a second. */
const RECHECK_INTERVAL_MS_MIN = 1_000;

export interface AuthenticatorOptions {
  readonly cacheTtlMs: number;
  readonly log: Logger;
  /** Wall clock (ms); the cache and last_used_at follow real time, not the billing clock. */
  readonly now?: () => number;
  /** The two caches' bounds (tests make them small). */
  readonly knownEntriesMax?: number;
  readonly unknownEntriesMax?: number;
}

/** A time-bounded, size-bounded map: expired entries go first, then the oldest. */
class ExpiringCache<V> {
  private readonly entries = new Map<string, { value: V; expiresAtMs: number }>();

  constructor(private readonly entriesMax: number) {}

  get(key: string, nowMs: number): V | undefined {
    const entry = this.entries.get(key);
    return entry && entry.expiresAtMs > nowMs ? entry.value : undefined;
  }

  /** Whether `key` has an entry, expired or not (until the bound pushes it out). */
  holds(key: string): boolean {
    return this.entries.has(key);
  }

  set(key: string, value: V, expiresAtMs: number, nowMs: number): void {
    this.entries.delete(key);
    if (this.entries.size >= this.entriesMax) {
      for (const [k, entry] of this.entries) if (entry.expiresAtMs <= nowMs) this.entries.delete(k);
      // Still full of live entries: drop the oldest (a Map keeps insertion order).
      for (const k of this.entries.keys()) {
        if (this.entries.size < this.entriesMax) break;
        this.entries.delete(k);
      }
    }
    this.entries.set(key, { value, expiresAtMs });
  }
}

/**
 * Turns a presented key into a Caller, for every transport. Known keys are cached for
 * `cacheTtlMs`, unknown ones for at most UNKNOWN_KEY_CACHE_TTL_MS_MAX in a cache of their own,
 * so the hot path does not query the database per call; concurrent look-ups of one key share
 * one query.
 */
export class Authenticator {
  private readonly known: ExpiringCache<ApiKeyRecord>;
  private readonly unknown: ExpiringCache<true>;
  private readonly inFlight = new Map<string, Promise<ApiKeyRecord | null>>();
  private readonly rechecks = new Map<string, Promise<ApiKeyRecord | null>>();
  private readonly touchedAtMs = new Map<bigint, number>();
  private readonly peerFailures: PeerFailures;
  private readonly now: () => number;

  constructor(
    private readonly database: Database,
    private readonly options: AuthenticatorOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.peerFailures = new PeerFailures(this.now);
    this.known = new ExpiringCache(options.knownEntriesMax ?? API_KEY_CACHE_ENTRIES_MAX);
    this.unknown = new ExpiringCache(options.unknownEntriesMax ?? UNKNOWN_KEY_CACHE_ENTRIES_MAX);
  }

  /**
   * Throws missing_api_key, invalid_api_key or api_key_revoked (service_unavailable if the
   * database is down), and rate_limit_exceeded for a key not cached from a client (`client`,
   * its address; null when unknown) that presented too many unknown keys this second (PeerFailures).
   */
  async authenticate(presented: string | null, client: ClientAddress | null = null): Promise<AuthenticatedCaller> {
    if (presented === null || presented === "") throw new BillingError("missing_api_key");
    // The format check costs no query: random text never reaches the database.
    if (apiKeyModeOf(presented) === null) throw new BillingError("invalid_api_key");
    return this.authenticateHash(hashApiKey(presented), client);
  }

  /**
   * The caller of a key known by its stored hash (a console session's), through the same cache:
   * a revoked key is refused within cacheTtlMs.
   */
  async authenticateHash(keyHash: string, client: ClientAddress | null = null): Promise<AuthenticatedCaller> {
    const record = await this.lookUp(keyHash, client);
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

  /**
   * How often a long-lived caller (a WatchEvents stream) is checked again with `recheck`: the
   * cache's time, so a revoked key ends its streams within it as it is refused on new calls.
   */
  get recheckIntervalMs(): number {
    return Math.max(this.options.cacheTtlMs, RECHECK_INTERVAL_MS_MIN);
  }

  /**
   * An admitted key looked up again past the cache (which it refreshes): throws invalid_api_key
   * or api_key_revoked once it was deleted or revoked, service_unavailable if the database is down.
   */
  async recheck(presented: string): Promise<void> {
    const keyHash = hashApiKey(presented);
    // The streams of one key share one look-up: 16 streams of a key cost one query, not 16.
    let pending = this.rechecks.get(keyHash);
    if (!pending) {
      pending = runQuery(() => findApiKeyByHash(this.database.db, keyHash)).finally(() => this.rechecks.delete(keyHash));
      this.rechecks.set(keyHash, pending);
    }
    const record = await pending;
    this.remember(keyHash, record);
    if (!record) throw new BillingError("invalid_api_key");
    if (record.revokedAtMs !== null) throw new BillingError("api_key_revoked");
  }

  private lookUp(keyHash: string, client: ClientAddress | null): Promise<ApiKeyRecord | null> | ApiKeyRecord | null {
    const nowMs = this.now();
    const known = this.known.get(keyHash, nowMs);
    if (known) return known;
    if (this.unknown.get(keyHash, nowMs)) return null;
    const pending = this.inFlight.get(keyHash);
    if (pending) return pending;
    // A key found before (its entry expired) is looked up whatever its address has sent.
    const address = client !== null && !this.known.holds(keyHash) ? client() : null;
    if (address !== null) this.peerFailures.take(address);
    // A failed look-up (database down) is not remembered: the next call tries again.
    const lookUp = runQuery(() => findApiKeyByHash(this.database.db, keyHash))
      .then((record) => {
        this.remember(keyHash, record);
        if (record !== null && address !== null) this.peerFailures.found(address);
        return record;
      })
      .finally(() => this.inFlight.delete(keyHash));
    this.inFlight.set(keyHash, lookUp);
    return lookUp;
  }

  private remember(keyHash: string, record: ApiKeyRecord | null): void {
    const { cacheTtlMs } = this.options;
    if (cacheTtlMs <= 0) return;
    const nowMs = this.now();
    if (record) this.known.set(keyHash, record, nowMs + cacheTtlMs, nowMs);
    else this.unknown.set(keyHash, true, nowMs + Math.min(cacheTtlMs, UNKNOWN_KEY_CACHE_TTL_MS_MAX), nowMs);
  }

  /** Records use without a write per call: at most once per LAST_USED_INTERVAL_MS, off the call's path. */
  private touch(apiKeyId: bigint): void {
    const nowMs = this.now();
    const last = this.touchedAtMs.get(apiKeyId);
    if (last !== undefined && nowMs - last < LAST_USED_INTERVAL_MS) return;
    this.touchedAtMs.set(apiKeyId, nowMs);
    // Logged by the `err` serializer, which drops the statement's values (the logger's serializeError).
    touchApiKey(this.database.db, apiKeyId, nowMs).catch((error: unknown) =>
      this.options.log.warn({ err: error }, "could not record an API key's last use"),
    );
  }
}
