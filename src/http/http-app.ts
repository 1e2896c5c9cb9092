import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { BillingContext } from "../operations/context.js";
import type { InFlightCalls } from "../operations/in-flight-calls.js";
import type { Caller } from "../domain/caller.js";
import type { Metrics } from "../metrics.js";
import type { Authenticate, RateLimit, RouteAccess } from "./auth.js";
import type { FieldCodeOverrides } from "./schema-errors.js";
import type { ConnectionLimits } from "../tenancy/connection-limits.js";
import type { ProxyTrust } from "../tenancy/client-address.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Who may call the route; a route that does not say needs a write key. */
    access?: RouteAccess;
    /** Catalogue codes of schema failures that differ on this route from schema-errors.ts's. */
    fieldCodes?: FieldCodeOverrides;
  }
  interface FastifyRequest {
    /** Set by the auth hook on every route that is not public. */
    caller: Caller | null;
    /** The catalogue code the request failed with, for the log line and metrics. */
    errorCode: string | null;
    /** Why it was service_unavailable (the driver's errno and code), for the log line. */
    errorCause: object | null;
    /** Answered 400 at HTTP_REQUEST_TIMEOUT_MS before it arrived whole: its line is written then. */
    timedOut: boolean;
    /** The operations' context for this request, with its signal (set by the first hook). */
    billingContext: BillingContext | null;
  }
}

/** The fastify instance the routes are registered on: TypeBox schemas give the handlers' types. */
export type HttpApp = FastifyInstance<Server, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

/** What the HTTP transport is given: the operations' context and the shared auth and limits. */
export interface HttpDependencies {
  readonly context: BillingContext;
  readonly authenticate: Authenticate;
  readonly rateLimit: RateLimit;
  readonly log: Logger;
  readonly metrics?: Metrics;
  /** Why the instance does not serve now, or null (GET /v1/health). */
  readonly notServing: () => "stopping" | "database_unreachable" | null;
  /** Routes of another transport served on the same port (the console), registered by the wiring. */
  readonly mount?: FastifyPluginAsync;
  /**
   * How long a client has to send a whole request (HTTP_REQUEST_TIMEOUT_MS): one that trickles
   * its headers or stalls in its body would otherwise hold its connection and buffer for good.
   */
  readonly requestTimeoutMs: number;
  /** The open connections the listener holds (connection-limits.ts); unlimited when absent. */
  readonly connections?: ConnectionLimits;
  /** The proxies whose X-Forwarded-For gives `request.ip` (TRUSTED_PROXIES); none when absent. */
  readonly proxyTrust?: ProxyTrust;
  /** The requests in flight, answered service_unavailable if a shutdown's grace runs out on them. */
  readonly inFlight?: InFlightCalls;
}

/**
 * Where a shutdown stands, as the HTTP API answers it: `draining` (from SIGTERM) every answer says
 * `Connection: close`, so keep-alive clients reconnect (through their balancer) elsewhere;
 * `closing` (the listener closed) a request that still arrives on an open connection is answered
 * the catalogue's service_unavailable.
 */
export interface HttpStopping {
  draining: boolean;
  closing: boolean;
}

/**
 * The context a route calls its operation with: the shared one, with a signal that aborts when
 * the client goes away before the reply (call-signal.ts).
 */
export function contextOf(request: FastifyRequest): BillingContext {
  if (request.billingContext === null) throw new Error("a route ran before the request hook set its context");
  return request.billingContext;
}

/** The authenticated caller of a non-public route. */
export function callerOf(request: FastifyRequest): Caller {
  if (request.caller === null) throw new Error("a non-public route ran without a caller");
  return request.caller;
}
