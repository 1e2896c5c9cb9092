import type { DestinationStream, Logger } from "pino";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { generateApiKey, type ProjectMode } from "../../src/domain/api-key.js";
import type { Scope } from "../../src/domain/caller.js";
import type { ProjectRow } from "../../src/store/projects-store.js";
import { createApiKey, revokeApiKeyByPrefix, type CreatedApiKey } from "../../src/tenancy/api-keys.js";
import { createProject, projectNamed } from "../../src/tenancy/projects.js";
import { createLogger } from "../../src/logger.js";
import { TestClient } from "./client.js";
import { TestClock } from "./clock.js";
import { uniqueDatabaseUrl } from "./database.js";
import { uid } from "./fixtures.js";

export interface TestServer {
  readonly app: App;
  /** Presents `apiKey`, a write key of the `default` project, on every call. */
  readonly client: TestClient;
  readonly clock: TestClock;
  readonly databaseUrl: string;
  readonly apiKey: string;
  /** A client on this server presenting `apiKey` (or no key at all with null); closed by stop(). */
  clientWith(apiKey: string | null): TestClient;
  /** A new project (unique name unless given), rate limits as given or the defaults. */
  createProject(options?: { name?: string; mode?: ProjectMode; ratePerSecond?: number; burst?: number }): Promise<ProjectRow>;
  /** A new key of `project` (the default project when omitted). */
  createKey(options?: { project?: ProjectRow; scope?: Scope; label?: string }): Promise<CreatedApiKey>;
  revokeKey(prefix: string): Promise<void>;
  /** A second server instance over the same database (same environment plus `env`); stopped by stop(). */
  startAnotherInstance(env?: Record<string, string>): Promise<App>;
  /** Base URL of the HTTP API. */
  readonly httpUrl: string;
  stop(): Promise<void>;
}

export interface TestServerOptions {
  /** Where the first start's key would be shown (only without BOOTSTRAP_API_KEY). */
  readonly announce?: (line: string) => void;
  /** The server's logger; silent (or TEST_LOG_LEVEL) by default. */
  readonly log?: Logger;
  /** Where the service's log lines go (at level info) when no `log` is given. */
  readonly logDestination?: DestinationStream;
}

/**
 * The real server on 127.0.0.1:<free port> over a fresh database, with a hand-moved clock. Keys
 * are on: the server starts with BOOTSTRAP_API_KEY (a fresh write key of the `default` project),
 * and `client` presents it.
 */
export async function startTestServer(env: Record<string, string> = {}, options: TestServerOptions = {}): Promise<TestServer> {
  const database = uniqueDatabaseUrl();
  const clock = new TestClock();
  const apiKey = env.BOOTSTRAP_API_KEY ?? generateApiKey("test");
  const environment = {
    DATABASE_URL: database.url,
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    HTTP_PORT: "0",
    SWEEP_INTERVAL_MS: "0",
    SHUTDOWN_GRACE_MS: "2000",
    HEALTH_CHECK_INTERVAL_MS: "200",
    BOOTSTRAP_API_KEY: apiKey,
    ...env,
  };
  const level = options.logDestination ? "info" : (process.env.TEST_LOG_LEVEL ?? "silent");
  const log = options.log ?? createLogger(level, options.logDestination);
  const app = await startApp(loadConfig(environment), {
    log,
    now: clock.now,
    ...(options.announce ? { announce: options.announce } : {}),
  });
  const client = new TestClient(app.port, apiKey);
  const clients: TestClient[] = [client];
  const others: App[] = [];
  return {
    app,
    client,
    clock,
    databaseUrl: database.url,
    apiKey,
    clientWith(key) {
      const extra = new TestClient(app.port, key);
      clients.push(extra);
      return extra;
    },
    createProject: ({ name, mode, ...rateLimit } = {}) =>
      createProject(app.database, { name: name ?? uid("project"), mode: mode ?? "test", ...rateLimit }, Date.now()),
    async createKey(o = {}) {
      const project = o.project ?? (await projectNamed(app.database, "default"));
      return createApiKey(app.database, project, { label: o.label ?? "test", scope: o.scope ?? "write", nowMs: Date.now() });
    },
    async revokeKey(prefix) {
      await revokeApiKeyByPrefix(app.database, prefix, Date.now());
    },
    async startAnotherInstance(extra = {}) {
      const other = await startApp(loadConfig({ ...environment, ...extra }), { log, now: clock.now });
      others.push(other);
      return other;
    },
    httpUrl: app.httpUrl,
    async stop() {
      for (const c of clients) c.close();
      for (const other of others) await other.stop();
      await app.stop();
      await database.drop();
    },
  };
}
