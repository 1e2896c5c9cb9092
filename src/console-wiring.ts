import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { ConsoleDependencies } from "./console/console-dependencies.js";
import type { Config } from "./config.js";
import { contextOf } from "./http/http-app.js";
import type { BillingContext } from "./operations/context.js";
import type { Database } from "./store/database.js";
import type { Authenticator } from "./tenancy/authenticator.js";
import { ConsoleSessions } from "./tenancy/console-sessions.js";
import type { RateLimiter } from "./tenancy/rate-limiter.js";

/** Bytes of the cookie secret made when CONSOLE_SESSION_SECRET is unset. */
const GENERATED_SECRET_BYTES = 32;

/**
 * The console's dependencies from the configuration. Without CONSOLE_SESSION_SECRET the cookies
 * are signed with a random secret of this process: sessions end at a restart and do not move to
 * another instance, which one warning line says.
 */
export function consoleDependencies(
  config: Config,
  parts: {
    context: BillingContext;
    authenticator: Authenticator;
    rateLimiter: RateLimiter;
    database: Database;
    log: Logger;
  },
): ConsoleDependencies {
  const sessionTtlMs = config.CONSOLE_SESSION_TTL_MINUTES * 60_000;
  let cookieSecret = config.CONSOLE_SESSION_SECRET;
  if (cookieSecret === undefined) {
    cookieSecret = randomBytes(GENERATED_SECRET_BYTES).toString("base64url");
    parts.log.warn(
      "CONSOLE_SESSION_SECRET is unset: console sessions are signed with a random secret of this process (they end at a restart and work on this instance only)",
    );
  }
  return {
    contextOf,
    sessions: new ConsoleSessions(parts.database, parts.authenticator, { ttlMs: sessionTtlMs, now: parts.context.now }),
    rateLimit: (caller) => parts.rateLimiter.consume(caller),
    log: parts.log,
    cookieSecret,
    sessionTtlMs,
  };
}
