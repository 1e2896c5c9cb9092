import pino from "pino";
import { afterAll, beforeAll, describe, it } from "vitest";
import { startApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { expectError } from "../support/client.js";
import { commitEvents, testEvent, TestWatcher } from "../support/events.js";
import { startTestServer, type TestServer } from "../support/server.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

describe("a WatchEvents stream, like a unary call", () => {
  it("takes one token of its key's rate limit when it opens", async () => {
    const project = await s.createProject({ ratePerSecond: 1, burst: 1 });
    const key = await s.createKey({ project });
    const first = new TestWatcher(s.app.port, key.key, {});
    const event = testEvent(s.app, { projectId: project.id, customerId: "limited" });
    await commitEvents(s.app, [event]);
    await first.count(1);
    const second = new TestWatcher(s.app.port, key.key, {});
    await expectError(
      second.ended.then((e) => Promise.reject(e)),
      "rate_limit_exceeded",
      undefined,
      { messageFree: true },
    );
    first.close();
    second.close();
  });

  it("ends with service_unavailable when the server shuts down, instead of holding the shutdown for its grace", async () => {
    const other = await startApp(
      loadConfig({
        DATABASE_URL: s.databaseUrl,
        GRPC_HOST: "127.0.0.1",
        GRPC_PORT: "0",
        HTTP_PORT: "0",
        SWEEP_INTERVAL_MS: "0",
        SHUTDOWN_GRACE_MS: "60000",
        BOOTSTRAP_API_KEY: s.apiKey,
      }),
      { log: pino({ level: "silent" }), now: s.clock.now },
    );
    const watcher = new TestWatcher(other.port, s.apiKey, { customerId: "shutdown-1" });
    await commitEvents(other, [testEvent(other, { customerId: "shutdown-1" })]);
    await watcher.count(1);
    // SHUTDOWN_GRACE_MS is a minute: the stop returns before because the stream ends at once.
    const stopped = other.stop();
    await expectError(
      watcher.ended.then((e) => Promise.reject(e)),
      "service_unavailable",
      "The server is shutting down; resume from the last cursor.",
    );
    await stopped;
    watcher.close();
  });
});
