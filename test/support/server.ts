import type { DestinationStream } from "pino";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { TestClient } from "./client.js";
import { TestClock } from "./clock.js";
import { uniqueDatabaseUrl } from "./database.js";

export interface TestServer {
  readonly app: App;
  readonly client: TestClient;
  readonly clock: TestClock;
  readonly databaseUrl: string;
  stop(): Promise<void>;
}

export interface TestServerOptions {
  /** Where the service's log lines go (at level info); silent by default, or TEST_LOG_LEVEL. */
  readonly logDestination?: DestinationStream;
}

/** The real server on 127.0.0.1:<free port> over a fresh database, with a hand-moved clock. */
export async function startTestServer(env: Record<string, string> = {}, options: TestServerOptions = {}): Promise<TestServer> {
  const database = uniqueDatabaseUrl();
  const clock = new TestClock();
  const config = loadConfig({
    DATABASE_URL: database.url,
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    SWEEP_INTERVAL_MS: "0",
    SHUTDOWN_GRACE_MS: "2000",
    HEALTH_CHECK_INTERVAL_MS: "200",
    ...env,
  });
  const level = options.logDestination ? "info" : (process.env.TEST_LOG_LEVEL ?? "silent");
  const log = createLogger(level, options.logDestination);
  const app = await startApp(config, { log, now: clock.now });
  const client = new TestClient(app.port);
  return {
    app,
    client,
    clock,
    databaseUrl: database.url,
    async stop() {
      client.close();
      await app.stop();
      await database.drop();
    },
  };
}
