import { Redis } from "ioredis";
import type { Logger } from "pino";
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { BillingError } from "../errors/billing-error.js";
import type { Metrics } from "../metrics.js";
import type { AuthenticatedCaller, RateLimit } from "./authenticator.js";

/** A Redis that does not answer within this long counts as down: the call goes through. */
const REDIS_COMMAND_TIMEOUT_MS = 250;
const REDIS_CONNECT_TIMEOUT_MS = 1_000;
const REDIS_RECONNECT_DELAY_MAX_MS = 2_000;

export interface RateLimiterOptions {
  /** Buckets live in Redis (shared by every instance) when set, else in this process. */
  readonly redisUrl?: string | undefined;
  /** Namespace of the bucket keys in Redis. */
  readonly keyPrefix: string;
  readonly log: Logger;
  readonly metrics?: Metrics | undefined;
}

interface Limiter {
  consume(key: string): Promise<RateLimiterRes>;
}

/**
 * One token bucket per API key, sized by its project (rate per second and burst), built from
 * rate-limiter-flexible: a one-second window of `rate` calls, topped up by a burst allowance of
 * `burst - rate` calls that refills over `(burst - rate) / rate` seconds (its BurstyRateLimiter).
 * Over the limit → rate_limit_exceeded carrying the real wait. When Redis cannot be reached the
 * call is let through: a billing call is never refused because the limiter is down. That is
 * logged once per outage and counted in billing_rate_limit_fail_open_total.
 */
export class RateLimiter {
  private readonly redis: Redis | null;
  private readonly limiters = new Map<string, Limiter>();
  private redisDown = false;

  constructor(private readonly options: RateLimiterOptions) {
    this.redis = options.redisUrl
      ? new Redis(options.redisUrl, {
          // Without a connection, commands fail at once instead of queueing behind a reconnect.
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
          connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
          retryStrategy: (attempt) => Math.min(attempt * 200, REDIS_RECONNECT_DELAY_MAX_MS),
        })
      : null;
    // Connection errors surface through failed commands (handled below); the event itself would
    // otherwise be printed by ioredis on every reconnect attempt.
    this.redis?.on("error", () => undefined);
  }

  /**
   * Waits (up to the connect timeout) for Redis, so that the first calls after start are limited
   * rather than let through while the connection is still being made. Not reached: the server
   * starts anyway, failing open, and says so once.
   */
  async waitUntilConnected(timeoutMs = REDIS_CONNECT_TIMEOUT_MS): Promise<boolean> {
    const redis = this.redis;
    if (!redis || redis.status === "ready") return true;
    const ready = await new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        redis.off("ready", onReady);
        resolve(ok);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      redis.once("ready", onReady);
    });
    if (!ready) this.markDown("not reachable at start");
    return ready;
  }

  get backend(): "redis" | "memory" {
    return this.redis ? "redis" : "memory";
  }

  /** Takes one token from the caller's bucket; throws rate_limit_exceeded when it is empty. */
  async consume(caller: AuthenticatedCaller): Promise<void> {
    const { ratePerSecond, burst } = caller.rateLimit;
    if (ratePerSecond === 0) return;
    try {
      await this.limiterFor(caller.rateLimit).consume(caller.apiKeyId.toString());
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) {
        this.failOpen(rejection);
        return;
      }
      this.backUp();
      const retryDelayMs = Math.max(1, Math.ceil(rejection.msBeforeNext));
      throw new BillingError(
        "rate_limit_exceeded",
        undefined,
        { rate_per_second: ratePerSecond, burst, retry_delay_ms: retryDelayMs },
        { retryDelayMs },
      );
    }
    this.backUp();
  }

  async close(): Promise<void> {
    if (!this.redis) return;
    await this.redis.quit().catch(() => this.redis?.disconnect());
  }

  private limiterFor({ ratePerSecond, burst }: RateLimit): Limiter {
    const name = `${ratePerSecond}:${burst}`;
    const existing = this.limiters.get(name);
    if (existing) return existing;
    const extra = Math.max(0, burst - ratePerSecond);
    const window = (points: number, seconds: number, part: string) => {
      const keyPrefix = `${this.options.keyPrefix}:${part}:${name}`;
      return this.redis
        ? new RateLimiterRedis({ storeClient: this.redis, rejectIfRedisNotReady: true, points, duration: seconds, keyPrefix })
        : new RateLimiterMemory({ points, duration: seconds, keyPrefix });
    };
    const steady = window(ratePerSecond, 1, "rate");
    const limiter: Limiter =
      extra === 0 ? steady : new BurstyRateLimiter(steady, window(extra, Math.max(1, Math.ceil(extra / ratePerSecond)), "burst"));
    this.limiters.set(name, limiter);
    return limiter;
  }

  private failOpen(error: unknown): void {
    this.options.metrics?.rateLimitFailOpen.inc();
    this.markDown(error instanceof Error ? error.message : String(error));
  }

  /** One warning per outage, however many calls it lets through. */
  private markDown(reason: string): void {
    if (this.redisDown) return;
    this.redisDown = true;
    this.options.log.warn({ reason }, "rate limiter: Redis unreachable, letting calls through without a limit");
  }

  private backUp(): void {
    if (!this.redisDown) return;
    this.redisDown = false;
    this.options.log.info("rate limiter: Redis reachable again, limits apply");
  }
}
