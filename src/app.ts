import { createServer } from "node:net";
import { setMaxListeners } from "node:events";
import type { Server as NodeHttpServer } from "node:http";
import type { ServerCredentials } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { BillingContext } from "./operations/context.js";
import { AlertHints } from "./operations/alert-hints.js";
import { LedgerCounts } from "./operations/ledger-counts.js";
import { GroupCommit } from "./operations/group-commit.js";
import type { WatcherLimits } from "./operations/events/watcher-slots.js";
import { startSweeper } from "./operations/sweeper.js";
import type { EventFeed } from "./operations/events/event-feed.js";
import { startEventFeed } from "./operations/events/start-event-feed.js";
import { AlertServiceService } from "../gen/velobase/billing/v1/alerts.js";
import { EventServiceService } from "../gen/velobase/billing/v1/events.js";
import { alertHandlers } from "./grpc/alert-handlers.js";
import { eventHandlers } from "./grpc/event-handlers.js";
import { type Config, hostPort } from "./config.js";
import { EntitlementServiceService } from "../gen/velobase/billing/v1/entitlements.js";
import { SlotServiceService } from "../gen/velobase/billing/v1/slots.js";
import { billingHandlers } from "./grpc/billing-handlers.js";
import { entitlementHandlers } from "./grpc/entitlement-handlers.js";
import { slotHandlers } from "./grpc/slot-handlers.js";
import {
  ALERT_SERVICE_NAME,
  ENTITLEMENT_SERVICE_NAME,
  EVENT_SERVICE_NAME,
  type GrpcServer,
  HealthReporter,
  SLOT_SERVICE_NAME,
  startGrpcServer,
} from "./grpc/server.js";
import { readTlsFiles, serverCredentials, type TlsMaterial, type TransportSecurity } from "./grpc/tls.js";
import type { GuardedEnvironment } from "./grpc/unary.js";
import { createLogger } from "./logger.js";
import { type HttpServer, startHttpServer } from "./http/server.js";
import { consoleDependencies } from "./console-wiring.js";
import { consolePlugin } from "./console/console-plugin.js";
import { Metrics } from "./metrics.js";
import { openDatabase, type Database } from "./store/database.js";
import { waitingLine } from "./store/leases-store.js";
import { Authenticator } from "./tenancy/authenticator.js";
import { bootstrapApiKey } from "./tenancy/bootstrap.js";
import { RateLimiter } from "./tenancy/rate-limiter.js";
import type { ConnectionLimits } from "./tenancy/connection-limits.js";
import { proxyTrustOf, trustNoProxy } from "./tenancy/client-address.js";
import { setTimeout as sleep } from "node:timers/promises";
import { InFlightCalls } from "./operations/in-flight-calls.js";
import { TransactionGate } from "./operations/transaction-gate.js";
import { GATED_WRITES_WAITING_MAX, POOL_KEPT_FOR_READS } from "./domain/limits.js";
import { SERVICE_VERSION } from "./version.js";

/** How long stop() waits for the pool to close once the calls are done or cut. */
const POOL_CLOSE_WAIT_MS = 1_000;

export interface App {
  readonly port: number;
  /** Port of the HTTP API. */
  readonly httpPort: number;
  /** Base URL of the HTTP API, e.g. `http://127.0.0.1:8080`. */
  readonly httpUrl: string;
  /** Port of the /metrics endpoint, when METRICS_PORT is set. */
  readonly metricsPort: number | null;
  readonly database: Database;
  readonly context: BillingContext;
  readonly metrics: Metrics;
  readonly authenticator: Authenticator;
  readonly rateLimiter: RateLimiter;
  /** plaintext, tls or mtls, from the TLS_* settings. */
  readonly security: TransportSecurity;
  stop(): Promise<void>;
}

export interface AppOptions {
  readonly log?: Logger;
  /** Injected clock (epoch ms); tests pin it. */
  readonly now?: () => number;
  /** Where the first start's key is shown to a person; standard error by default. */
  readonly announce?: (line: string) => void;
  /**
   * A stop asked for while starting: a wait for another instance's migrations or first key ends
   * at once with the signal's reason thrown, and so do the migrations, after the statement at work
   * or during a statement's wait for a lock.
   */
  readonly signal?: AbortSignal;
}

/** The first start's key or BOOTSTRAP_API_KEY: the key itself is only ever announced, the log gets its prefix. */
async function ensureSomeoneCanGetIn(
  database: Database,
  config: Config,
  log: Logger,
  announce: (line: string) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  const waiting = waitingLine(log, "making the first key");
  const outcome = await bootstrapApiKey(database, config.BOOTSTRAP_API_KEY ?? null, Date.now(), { waiting, signal });
  if (outcome.kind === "generated") {
    announce(
      `velobase-billing: first start: created project "default" (mode test) and a write API key; it is shown once, store it now:\n` +
        `${outcome.key.key}\n`,
    );
    log.info({ keyPrefix: outcome.key.prefix }, "created the first API key (printed once on standard error)");
  } else if (outcome.kind === "stored") {
    log.info({ keyPrefix: outcome.prefix }, "stored BOOTSTRAP_API_KEY in project default");
  } else if (outcome.revokedBootstrapPrefix !== undefined) {
    log.warn({ keyPrefix: outcome.revokedBootstrapPrefix }, "BOOTSTRAP_API_KEY is revoked; it was left revoked");
  } else if (outcome.notDefaultWriteKey !== undefined) {
    const { prefix, scope } = outcome.notDefaultWriteKey;
    log.warn(
      { keyPrefix: prefix, scope },
      "BOOTSTRAP_API_KEY is already a key, but not a write key of project default; it was left as it is",
    );
  }
}

/** Watches the database so health reports SERVING only while it answers. */
/** The instance's sweeper (none with SWEEP_INTERVAL_MS=0), its lateness in the metrics. */
function sweeperOf(config: Config, context: BillingContext, log: Logger, metrics: Metrics): { stop(): Promise<void> } | null {
  if (config.SWEEP_INTERVAL_MS === 0) return null;
  return startSweeper(context, log, {
    intervalMs: config.SWEEP_INTERVAL_MS,
    retention: { retentionMs: config.EVENTS_RETENTION_HOURS * 3_600_000, awaitPublisher: config.NATS_URL !== undefined },
    observer: { onSettled: (latenessMs, via) => metrics.autoSettlementLateness.observe({ via }, latenessMs / 1000) },
  });
}

/** The port the metrics server listens on (METRICS_PORT=0 picks a free one), or null without it. */
function metricsPortOf(server: NodeHttpServer | null): number | null {
  const address = server?.address();
  return typeof address === "object" && address ? address.port : null;
}

/** One line per database node taken out of use or back in (a cluster's; a lone server has none). */
function logNodeChanges(before: ReadonlySet<string>, now: readonly string[], log: Logger): ReadonlySet<string> {
  const current = new Set(now);
  for (const node of current) if (!before.has(node)) log.warn({ node }, "database node taken out: calls go to the next one");
  for (const node of before) if (!current.has(node)) log.info({ node }, "database node back in use");
  return current;
}

function watchDatabase(database: Database, health: HealthReporter, intervalMs: number, log: Logger): () => void {
  let last: boolean | null = null;
  let out: ReadonlySet<string> = new Set();
  let busy = false;
  const probe = async () => {
    if (busy) return;
    busy = true;
    const outcome = await database.probe();
    busy = false;
    out = logNodeChanges(out, database.nodesOut(), log);
    if (outcome.ok !== last) {
      health.set(outcome.ok);
      // The failure by the driver's code and the server's words (serializeError: no statement values).
      if (last !== null && outcome.ok) log.info({ serving: true }, "database reachable again");
      else if (last !== null && !outcome.ok) log.warn({ serving: false, err: outcome.error }, "database unreachable");
      last = outcome.ok;
    }
  };
  const timer = setInterval(() => void probe(), intervalMs);
  timer.unref();
  void probe();
  return () => clearInterval(timer);
}

/** What the start-up line says of both listeners, which always share one setting. */
const LISTENERS_SECURITY: Record<TransportSecurity, string> = {
  plaintext: "gRPC plaintext, HTTP cleartext",
  tls: "gRPC TLS, HTTPS",
  mtls: "gRPC mutual TLS, HTTPS with client certificates",
};

/**
 * The hosts to listen on resolve to addresses of this machine, checked before the database is
 * touched (a listener on port 0, closed at once): a mistyped GRPC_HOST stops the start with its one
 * line, not after a first start has created the database and shown its key. A taken port still
 * shows only when the real listener binds.
 */
async function checkListenHosts(hosts: readonly string[]): Promise<void> {
  for (const host of new Set(hosts)) {
    await new Promise<void>((resolve, reject) => {
      const probe = createServer();
      probe.once("error", (error: NodeJS.ErrnoException) => {
        const code = error.code === "EADDRNOTAVAIL" ? "EADDRNOTAVAIL" : "ENOTFOUND";
        const what = code === "EADDRNOTAVAIL" ? "is no address of this machine" : "does not resolve";
        reject(Object.assign(new Error(`${host} ${what} (${error.code ?? code})`), { code }));
      });
      probe.listen(0, host, () => probe.close(() => resolve()));
    });
  }
}

/** What the listeners need, checked before the database is touched: the TLS files read, the hosts resolved. */
async function checkListeners(config: Config) {
  const tls = readTlsFiles({ certFile: config.TLS_CERT_FILE, keyFile: config.TLS_KEY_FILE, clientCaFile: config.TLS_CLIENT_CA_FILE });
  await checkListenHosts([config.GRPC_HOST, config.HTTP_HOST ?? config.GRPC_HOST]);
  return { tls, ...serverCredentials(tls) };
}

/** The database, migrated, with someone able to get in (closed again when that fails). */
async function openReadyDatabase(config: Config, log: Logger, options: AppOptions): Promise<Database> {
  const { signal } = options;
  const database = await openDatabase(config.DATABASE_URL, {
    poolSize: config.DB_POOL_SIZE,
    lockWaitTimeoutS: config.DB_LOCK_WAIT_TIMEOUT_S,
    nodeSelector: config.DB_NODE_SELECTOR,
    log,
    signal,
  });
  try {
    await ensureSomeoneCanGetIn(database, config, log, options.announce ?? ((line) => process.stderr.write(line)), signal);
  } catch (error) {
    await database.close();
    throw error;
  }
  return database;
}

/** The operations' context: every write goes through this instance's per-customer group commit. */
function billingContext(database: Database, metrics: Metrics, config: Config, now: () => number, events: EventFeed): BillingContext {
  const base: BillingContext = {
    database,
    now,
    events,
    outbox: config.EVENTS_OUTBOX === "on",
    sideBySide: config.GROUP_COMMIT_SIDE_BY_SIDE,
    alertHints: new AlertHints(),
    ledgerCounts: new LedgerCounts(),
    retries: { onRetry: (reason) => metrics.retries.inc({ reason }) },
  };
  // Transactions outside group commit leave it GROUP_COMMIT_TRANSACTIONS connections and reads two.
  const transactionGate = new TransactionGate(
    Math.max(1, config.DB_POOL_SIZE - config.GROUP_COMMIT_TRANSACTIONS - POOL_KEPT_FOR_READS),
    GATED_WRITES_WAITING_MAX,
    (line) => metrics.overloadRefusals.inc({ line }),
  );
  // The group commit's runs use `base`; the calls it sets aside pass the gate.
  const groupCommit = new GroupCommit(
    base,
    {
      onGroup: (size) => metrics.groupCommitSize.observe(size),
      onFallback: () => metrics.groupCommitFallbacks.inc(),
      onSideBySide: (size) => metrics.sideBySideSize.observe(size),
      onSetAside: (calls) => metrics.setAside.inc(calls),
      onHeldWait: () => metrics.heldWaits.inc(),
      onOverloaded: (line) => metrics.overloadRefusals.inc({ line }),
    },
    { transactions: config.GROUP_COMMIT_TRANSACTIONS, sideBySide: config.GROUP_COMMIT_SIDE_BY_SIDE, gate: transactionGate },
  );
  metrics.watchGroupCommit(() => ({ ...groupCommit.load(), gate: transactionGate.load() }));
  return { ...base, groupCommit, transactionGate };
}

/** The WatchEvents streams an instance serves: per key, per project, in all. */
const watcherLimitsOf = (config: Config): WatcherLimits => ({
  perKey: config.EVENTS_WATCHERS_PER_KEY_MAX,
  perProject: config.EVENTS_WATCHERS_PER_PROJECT_MAX,
  total: config.EVENTS_WATCHERS_MAX,
});

/** What both transports are given: the operations' context and the shared guards. */
interface TransportDependencies {
  readonly context: BillingContext;
  readonly guard: GuardedEnvironment & { readonly metrics: Metrics; readonly inFlight: InFlightCalls };
  readonly health: HealthReporter;
  readonly tls: TlsMaterial | null;
  readonly credentials: ServerCredentials;
  /** Aborted on stop once the drain is over: open event streams end (service_unavailable) instead of holding the shutdown. */
  readonly closing: AbortSignal;
  /** The HTTP requests in flight (the gRPC calls' registry is the guard's). */
  readonly httpInFlight: InFlightCalls;
}

/** The gRPC server (five services) and the HTTP API, over the same context; neither when one fails. */
async function startTransports(config: Config, deps: TransportDependencies): Promise<{ grpc: GrpcServer; http: HttpServer }> {
  const { context, guard, health, tls } = deps;
  const connections = (transport: "grpc" | "http"): ConnectionLimits => ({
    max: config.CONNECTIONS_MAX,
    perAddressMax: config.CONNECTIONS_PER_ADDRESS_MAX,
    refused: (reason) => guard.metrics.connectionsRefused.inc({ transport, reason }),
  });
  const grpc = await startGrpcServer(billingHandlers(context, guard), health, hostPort(config.GRPC_HOST, config.GRPC_PORT), {
    credentials: deps.credentials,
    maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES,
    connections: connections("grpc"),
    idleTimeoutMs: config.GRPC_IDLE_TIMEOUT_MS,
    keepaliveMs: config.GRPC_KEEPALIVE_MS,
    inFlight: guard.inFlight,
    services: [
      { name: SLOT_SERVICE_NAME, definition: SlotServiceService, handlers: slotHandlers(context, guard) },
      { name: ENTITLEMENT_SERVICE_NAME, definition: EntitlementServiceService, handlers: entitlementHandlers(context, guard) },
      { name: EVENT_SERVICE_NAME, definition: EventServiceService, handlers: eventHandlers(context, { ...guard, closing: deps.closing }) },
      { name: ALERT_SERVICE_NAME, definition: AlertServiceService, handlers: alertHandlers(context, guard) },
    ],
  });
  const http = await startHttpServer(
    {
      context,
      authenticate: (key, peer) => guard.authenticator.authenticate(key, peer),
      rateLimit: (caller) => guard.rateLimiter.consume(caller),
      log: guard.log,
      metrics: guard.metrics,
      notServing: () => health.notServing,
      requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
      connections: connections("http"),
      proxyTrust: guard.proxyTrust,
      inFlight: deps.httpInFlight,
      mount: consolePlugin(
        consoleDependencies(config, {
          context,
          authenticator: guard.authenticator,
          rateLimiter: guard.rateLimiter,
          database: context.database,
          log: guard.log,
        }),
      ),
    },
    { host: config.HTTP_HOST ?? config.GRPC_HOST, port: config.HTTP_PORT },
    // The same files as gRPC: HTTPS, and under mutual TLS a client certificate the CA signed.
    tls && { key: tls.key, cert: tls.cert, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) },
  ).catch(async (error: unknown) => {
    await grpc.shutdown(0);
    throw error;
  });
  return { grpc, http };
}

/** Database → migrations → gRPC and HTTP servers → sweeper; `stop()` undoes it in reverse. */
export async function startApp(config: Config, options: AppOptions = {}): Promise<App> {
  const log = options.log ?? createLogger(config.LOG_LEVEL);
  const { tls, credentials, security } = await checkListeners(config);
  const database = await openReadyDatabase(config, log, options);
  const metrics = new Metrics();
  if (database.singlePool) metrics.watchPool(database.singlePool);
  if (database.nodeIds.length > 0) metrics.watchNodes(database.nodeIds, () => database.nodesOut());
  const events = await startEventFeed(database, {
    pollIntervalMs: config.EVENTS_POLL_INTERVAL_MS,
    idlePollIntervalMs: config.EVENTS_IDLE_POLL_INTERVAL_MS,
    stampSpacingMs: config.EVENTS_STAMP_SPACING_MS,
    nats: config.NATS_URL ? { url: config.NATS_URL, stream: config.NATS_STREAM, subjectPrefix: config.NATS_SUBJECT_PREFIX } : null,
    log,
    onPublishLag: (lag) => metrics.eventsPublishLag.set(lag),
    watchers: watcherLimitsOf(config),
    cursorTags: config.EVENTS_CURSOR_TAGS === "on",
  });
  const context = billingContext(database, metrics, config, options.now ?? Date.now, events.feed);
  if (!context.outbox) {
    log.warn("EVENTS_OUTBOX=off: writes append no events, so the feed, NATS and balance alerts miss them (a switch for the bench only)");
  }
  const authenticator = new Authenticator(database, { cacheTtlMs: config.API_KEY_CACHE_TTL_MS, log });
  const rateLimiter = new RateLimiter({ redisUrl: config.REDIS_URL, keyPrefix: config.RATE_LIMIT_KEY_PREFIX, log, metrics });
  await rateLimiter.waitUntilConnected();
  const health = new HealthReporter();
  const proxyTrust = config.TRUSTED_PROXIES === undefined ? trustNoProxy : proxyTrustOf(config.TRUSTED_PROXIES);
  const guard = { log, metrics, authenticator, rateLimiter, proxyTrust, inFlight: new InFlightCalls() };
  const httpInFlight = new InFlightCalls();
  const closing = new AbortController();
  // Every open WatchEvents stream listens for it: Node's warning past 10 listeners is no leak here.
  setMaxListeners(0, closing.signal);
  const transports = { context, guard, health, tls, credentials, closing: closing.signal, httpInFlight };
  const { grpc, http } = await startTransports(config, transports).catch(async (error: unknown) => {
    await rateLimiter.close();
    await events.stop();
    await database.close();
    throw error;
  });
  const stopWatching = watchDatabase(database, health, config.HEALTH_CHECK_INTERVAL_MS, log);
  const sweeper = sweeperOf(config, context, log, metrics);
  let metricsServer: NodeHttpServer | null = null;
  if (config.METRICS_PORT !== undefined) metricsServer = await metrics.listen(config.GRPC_HOST, config.METRICS_PORT);
  log.info(
    {
      version: SERVICE_VERSION,
      port: grpc.port,
      httpPort: http.port,
      database: database.name,
      metricsPort: metricsPortOf(metricsServer),
      transport: security,
      rateLimits: rateLimiter.backend,
    },
    `velobase-billing listening (${LISTENERS_SECURITY[security]})`,
  );

  const stop = once(() =>
    stopInOrder({
      first: () => [stopWatching(), health.stop(), http.drain()],
      drainMs: config.SHUTDOWN_DRAIN_MS,
      calls: () => closeTransports({ grpc, http, health, closing, log }, config.SHUTDOWN_GRACE_MS),
      background: [() => sweeper?.stop(), () => events.stop(), () => metricsServer?.close(), () => rateLimiter.close()],
      database,
    }),
  );
  return {
    port: grpc.port,
    httpPort: http.port,
    httpUrl: http.url,
    metricsPort: metricsPortOf(metricsServer),
    database,
    context,
    metrics,
    authenticator,
    rateLimiter,
    security,
    stop,
  };
}

/**
 * Once the drain is over: streams end, the listeners close and the calls in flight get the grace;
 * one line when it ran out on some (they were answered service_unavailable).
 */
async function closeTransports(
  parts: { grpc: GrpcServer; http: HttpServer; health: HealthReporter; closing: AbortController; log: Logger },
  graceMs: number,
): Promise<void> {
  parts.health.endWatches();
  parts.closing.abort();
  const [grpcCut, httpCut] = await Promise.all([parts.grpc.shutdown(graceMs), parts.http.close(graceMs)]);
  const answered = grpcCut + httpCut;
  if (answered === 0) return;
  const { log } = parts;
  log.warn(
    { calls: answered, graceMs },
    "calls still running when the shutdown grace ran out were answered service_unavailable (some may have committed; a retry with the same key replays them)",
  );
}

/** `start()` once: later calls (a second signal, a test's cleanup) wait for the first. */
function once(start: () => Promise<void>): () => Promise<void> {
  let started: Promise<void> | null = null;
  return () => {
    started ??= start();
    return started;
  };
}

/**
 * Stops a running app: health says NOT_SERVING and HTTP answers close their connections (`first`),
 * calls go on being served for `drainMs` while balancers notice, then the listeners close and the
 * calls in flight finish within the grace (`calls`), the background work stops in order, the pool
 * closes.
 */
async function stopInOrder(steps: {
  first: () => unknown;
  drainMs: number;
  calls: () => Promise<unknown>;
  background: ReadonlyArray<() => unknown>;
  database: Database;
}): Promise<void> {
  steps.first();
  if (steps.drainMs > 0) await sleep(steps.drainMs);
  await steps.calls();
  for (const step of steps.background) await step();
  // A statement still waiting on a lock when the grace ran out would hold the pool's close
  // until its lock wait timeout: the process exits after stop() anyway, closing the sockets.
  await Promise.race([steps.database.close(), sleep(POOL_CLOSE_WAIT_MS, undefined, { ref: false })]);
}
