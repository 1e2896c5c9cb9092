import { pino } from "pino";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { TestClient } from "./client.js";
import { TestClock } from "./clock.js";
import { uniqueDatabaseUrl } from "./database.js";

export interface TestServer {
  readonly app: App;
  readonly client: TestClient;
  readonly clock: TestClock;
  readonly databaseUrl: string;
  /** Base URL of the HTTP API. */
  readonly httpUrl: string;
  stop(): Promise<void>;
}

/** The real server on 127.0.0.1:<free port> over a fresh database, with a hand-moved clock. */
export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const database = uniqueDatabaseUrl();
  const clock = new TestClock();
  const config = loadConfig({
    DATABASE_URL: database.url,
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    HTTP_PORT: "0",
    SWEEP_INTERVAL_MS: "0",
    SHUTDOWN_GRACE_MS: "2000",
    HEALTH_CHECK_INTERVAL_MS: "200",
    ...env,
  });
  const app = await startApp(config, { log: pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }), now: clock.now });
  const client = new TestClient(app.port);
  return {
    app,
    client,
    clock,
    databaseUrl: database.url,
    httpUrl: app.httpUrl,
    async stop() {
      client.close();
      await app.stop();
      await database.drop();
    },
  };
}
