import type { Server as HttpServer } from "node:http";
import { pino, type Logger } from "pino";
import type { BillingContext } from "./billing/context.js";
import { startSweeper } from "./billing/sweeper.js";
import type { Config } from "./config.js";
import { EntitlementServiceService } from "../gen/velobase/billing/v1/entitlements.js";
import { SlotServiceService } from "../gen/velobase/billing/v1/slots.js";
import { billingHandlers } from "./grpc/billing-handlers.js";
import { entitlementHandlers } from "./grpc/entitlement-handlers.js";
import { slotHandlers } from "./grpc/slot-handlers.js";
import { HealthReporter, startGrpcServer } from "./grpc/server.js";
import { Metrics } from "./metrics.js";
import { openDatabase, type Database } from "./store/database.js";

export interface App {
  readonly port: number;
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

/** Database → migrations → gRPC server → sweeper; `stop()` undoes it in reverse. */
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
    [
      { definition: SlotServiceService, handlers: slotHandlers(context, { log, metrics }) },
      { definition: EntitlementServiceService, handlers: entitlementHandlers(context, { log, metrics }) },
    ],
  );
  const stopWatching = watchDatabase(database, health, config.HEALTH_CHECK_INTERVAL_MS, log);
  const sweeper = config.SWEEP_INTERVAL_MS > 0 ? startSweeper(context, log, config.SWEEP_INTERVAL_MS) : null;
  let metricsServer: HttpServer | null = null;
  if (config.METRICS_PORT !== undefined) metricsServer = await metrics.listen(config.GRPC_HOST, config.METRICS_PORT);
  log.info({ port: grpc.port, database: database.name, metricsPort: config.METRICS_PORT }, "velobase-billing listening");

  const address = metricsServer?.address();
  return {
    port: grpc.port,
    metricsPort: typeof address === "object" && address ? address.port : null,
    database,
    context,
    metrics,
    async stop() {
      stopWatching();
      health.set(false);
      await grpc.shutdown(config.SHUTDOWN_GRACE_MS);
      await sweeper?.stop();
      metricsServer?.close();
      await database.close();
    },
  };
}
