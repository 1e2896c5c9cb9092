import { Redis } from "ioredis";
import type { Logger } from "pino";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { BillingError } from "../errors/billing-error.js";
import { serversForLog } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { AuthenticatedCaller, RateLimit } from "./authenticator.js";

/** A Redis that does not answer within this long counts as down: the call goes through. */
/** Redis's own port, when REDIS_URL names none. */
const REDIS_PORT_DEFAULT = 6379;
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

type Window = RateLimiterMemory | RateLimiterRedis;

/**
 * Two windows a call must both pass, the short one first. rate-limiter-flexible counts a refused
 * consume too, so a refused call gives its points back to every window that counted them:
 * refused calls never use up room (a Batch refused with 10 calls left leaves those 10). A refund
 * that lands just after its window ended gives the next window that many calls more. The wait a
 * refusal carries is the longest of the exhausted windows', so a retry after it is admitted.
 */
class Windows {
  constructor(
    private readonly short: Window,
    private readonly long: Window,
  ) {}

  async consume(key: string, points: number): Promise<void> {
    try {
      await this.short.consume(key, points);
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) await this.short.reward(key, points);
      throw await this.refusal(key, rejection);
    }
    try {
      await this.long.consume(key, points);
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) await Promise.all([this.long.reward(key, points), this.short.reward(key, points)]);
      throw await this.refusal(key, rejection);
    }
  }

  /** A window's refusal carrying the real wait; anything else (Redis down) as it is. */
  private async refusal(key: string, rejection: unknown): Promise<unknown> {
    if (!(rejection instanceof RateLimiterRes)) return rejection;
    let waitMs = rejection.msBeforeNext;
    for (const window of [this.short, this.long]) {
      const state = await window.get(key);
      if (state && state.consumedPoints >= window.points) waitMs = Math.max(waitMs, state.msBeforeNext);
    }
    return new RateLimiterRes(0, waitMs);
  }
}

/**
 * One limit per API key, sized by its project (rate per second and burst): a token bucket's
 * behaviour built from two of rate-limiter-flexible's fixed windows that a call must both pass,
 * `burst` calls per second and rate × D calls per D seconds, D = ⌈burst / rate⌉ + 1 (whole
 * seconds, as Redis expiries are). A window starts at the first call after the previous one
 * ended. So a fresh key passes `burst` calls at once, the next ones a second later, and `rate`
 * per second sustained (rate × D per D seconds). The worst case, exactly: in any T seconds at
 * most min(burst × (⌈T⌉ + 1), rate × D × (⌈T / D⌉ + 1)) calls pass, which is 2 × burst within
 * a moment where one one-second window ends and the next begins (a token bucket: burst +
 * rate × T). From a fresh key, constant load passes at most rate × D in the first D seconds.
 * Over the limit → rate_limit_exceeded carrying the real wait. When Redis cannot be reached the
 * call is let through: a billing call is never refused because the limiter is down. That is
 * logged once per outage and counted in billing_rate_limit_fail_open_total.
 */
export class RateLimiter {
  private readonly redis: Redis | null;
  private readonly limiters = new Map<string, Windows>();
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
    if (!ready) this.markDown({ reason: "not reachable at start" });
    return ready;
  }

  get backend(): "redis" | "memory" {
    return this.redis ? "redis" : "memory";
  }

  /**
   * Takes `points` tokens (one per write: a Batch of n writes costs n) from the caller's bucket;
   * throws rate_limit_exceeded when there are not that many.
   */
  async consume(caller: AuthenticatedCaller, points = 1): Promise<void> {
    const { ratePerSecond, burst } = caller.rateLimit;
    if (ratePerSecond === 0) return;
    // More writes than the burst never fit in the window: waiting cannot help, so not retryable.
    if (points > burst) {
      throw new BillingError(
        "invalid_argument",
        `This batch holds ${points} writes; this key's rate limit admits at most ${burst} (its burst) in one call.`,
        { field: "operations", burst },
      );
    }
    try {
      await this.limiterFor(caller.rateLimit).consume(caller.apiKeyId.toString(), points);
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

  private limiterFor({ ratePerSecond, burst }: RateLimit): Windows {
    const name = `${ratePerSecond}:${burst}`;
    const existing = this.limiters.get(name);
    if (existing) return existing;
    const window = (points: number, seconds: number, part: string): Window => {
      const keyPrefix = `${this.options.keyPrefix}:${part}:${name}`;
      return this.redis
        ? new RateLimiterRedis({ storeClient: this.redis, rejectIfRedisNotReady: true, points, duration: seconds, keyPrefix })
        : new RateLimiterMemory({ points, duration: seconds, keyPrefix });
    };
    // The long window holds a burst and a second's rate more, so that after a burst the next
    // calls pass as soon as the one-second window renews, not only when the long one does.
    const seconds = Math.ceil(burst / ratePerSecond) + 1;
    const limiter = new Windows(window(burst, 1, "second"), window(ratePerSecond * seconds, seconds, "window"));
    this.limiters.set(name, limiter);
    return limiter;
  }

  private failOpen(error: unknown): void {
    this.options.metrics?.rateLimitFailOpen.inc();
    // As `err`: the logger's serializer masks values in the message (a Redis error may quote a key).
    this.markDown({ err: error });
  }

  /** One warning per outage, however many calls it lets through; it names the server, not its credentials. */
  private markDown(why: { reason: string } | { err: unknown }): void {
    if (this.redisDown) return;
    this.redisDown = true;
    this.options.log.warn(
      { ...why, server: serversForLog(this.options.redisUrl ?? "", REDIS_PORT_DEFAULT) },
      "rate limiter: Redis unreachable, letting calls through without a limit",
    );
  }

  private backUp(): void {
    if (!this.redisDown) return;
    this.redisDown = false;
    this.options.log.info("rate limiter: Redis reachable again, limits apply");
  }
}
