import type { FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { BillingContext } from "../operations/context.js";
import type { AuthenticatedCaller } from "../tenancy/authenticator.js";
import type { ConsoleSessions } from "../tenancy/console-sessions.js";

/** What the console is given by the wiring (app.ts). */
export interface ConsoleDependencies {
  /**
   * The operations' context of a request: the HTTP server's (which mounts the console), with a
   * signal that aborts when the browser goes away, so a form whose tab was closed before its turn
   * is not run.
   */
  readonly contextOf: (request: FastifyRequest) => BillingContext;
  readonly sessions: ConsoleSessions;
  /** Takes one request from the signed-in key's budget, or throws rate_limit_exceeded. */
  readonly rateLimit: (caller: AuthenticatedCaller) => Promise<void>;
  readonly log: Logger;
  /** Signs the session and CSRF cookies (CONSOLE_SESSION_SECRET). */
  readonly cookieSecret: string;
  readonly sessionTtlMs: number;
}
