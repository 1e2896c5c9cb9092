import type { Server as HttpServer } from "node:http";
import { pino, type Logger } from "pino";
import { DEFAULT_PROJECT_ID, type BillingContext } from "./billing/context.js";
import { startSweeper } from "./billing/sweeper.js";
import type { Config } from "./config.js";
import { billingHandlers } from "./grpc/billing-handlers.js";
import { HealthReporter, startGrpcServer } from "./grpc/server.js";
import type { Caller } from "./domain/caller.js";
import { BillingError } from "./errors/billing-error.js";
import type { Authenticate, RateLimit } from "./http/auth.js";
import { startHttpServer } from "./http/server.js";
import { Metrics } from "./metrics.js";
import { openDatabase, type Database } from "./store/database.js";

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
  stop(): Promise<void>;
}

export interface AppOptions {
  readonly log?: Logger;
  /** Injected clock (epoch ms); tests pin it. */
  readonly now?: () => number;
}

// TEMPORARY: replaced by the tenancy branch's Authenticator at merge. Until API keys exist,
// any well-formed key (vb_live_… / vb_test_… with 32+ letters or digits) is a write key of the
// one project the first migration creates; there is no rate limit.
const TEMPORARY_KEY_PATTERN = /^vb_(live|test)_[A-Za-z0-9]{32,}$/;
const temporaryAuthenticate: Authenticate = async (rawKey) => {
  if (rawKey === null || rawKey === "") throw new BillingError("missing_api_key");
  if (!TEMPORARY_KEY_PATTERN.test(rawKey)) throw new BillingError("invalid_api_key");
  const caller: Caller = { projectId: DEFAULT_PROJECT_ID, apiKeyId: null, scope: "write", keyPrefix: rawKey.slice(0, 12) };
  return caller;
};
// TEMPORARY: replaced by the tenancy branch's rate limiter at merge.
const temporaryRateLimit: RateLimit = async () => undefined;

/** Watches the database so health reports SERVING only while it answers. */
function watchDatabase(database: Database, health: HealthReporter, intervalMs: number, log: Logger): () => void {
  let last: boolean | null = null;
  let busy = false;
  const probe = async () => {
    if (busy) return;
    busy = true;
    const ok = await database.pool.query("SELECT 1").then(
      () => true,
      () => false,
    );
    busy = false;
    if (ok !== last) {
      health.set(ok);
      if (last !== null) log[ok ? "info" : "warn"]({ serving: ok }, ok ? "database reachable again" : "database unreachable");
      last = ok;
    }
  };
  const timer = setInterval(() => void probe(), intervalMs);
  timer.unref();
  void probe();
  return () => clearInterval(timer);
}

/** Database → migrations → gRPC and HTTP servers → sweeper; `stop()` undoes it in reverse. */
export async function startApp(config: Config, options: AppOptions = {}): Promise<App> {
  const log = options.log ?? pino({ level: config.LOG_LEVEL });
  const database = await openDatabase(config.DATABASE_URL, { poolSize: config.DB_POOL_SIZE });
  const metrics = new Metrics();
  metrics.watchPool(database.pool);
  const context: BillingContext = {
    database,
    now: options.now ?? Date.now,
    retries: { onRetry: (reason) => metrics.retries.inc({ reason }) },
  };
  const health = new HealthReporter();
  const grpc = await startGrpcServer(
    billingHandlers(context, { log, metrics }),
    health,
    `${config.GRPC_HOST}:${config.GRPC_PORT}`,
  );
  const http = await startHttpServer(
    { context, authenticate: temporaryAuthenticate, rateLimit: temporaryRateLimit, log, metrics, isServing: () => health.serving },
    { host: config.HTTP_HOST ?? config.GRPC_HOST, port: config.HTTP_PORT },
  ).catch(async (error: unknown) => {
    await grpc.shutdown(0);
    await database.close();
    throw error;
  });
  const stopWatching = watchDatabase(database, health, config.HEALTH_CHECK_INTERVAL_MS, log);
  const sweeper = config.SWEEP_INTERVAL_MS > 0 ? startSweeper(context, log, config.SWEEP_INTERVAL_MS) : null;
  let metricsServer: HttpServer | null = null;
  if (config.METRICS_PORT !== undefined) metricsServer = await metrics.listen(config.GRPC_HOST, config.METRICS_PORT);
  log.info(
    { port: grpc.port, httpPort: http.port, database: database.name, metricsPort: config.METRICS_PORT },
    "velobase-billing listening",
  );

  const address = metricsServer?.address();
  return {
    port: grpc.port,
    httpPort: http.port,
    httpUrl: http.url,
    metricsPort: typeof address === "object" && address ? address.port : null,
    database,
    context,
    metrics,
    async stop() {
      stopWatching();
      health.set(false);
      await Promise.all([grpc.shutdown(config.SHUTDOWN_GRACE_MS), http.close(config.SHUTDOWN_GRACE_MS)]);
      await sweeper?.stop();
      metricsServer?.close();
      await database.close();
    },
  };
}
