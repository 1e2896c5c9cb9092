import pino from "pino";
import { Client, credentials, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
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

/** A second instance on the test database whose shutdown grace is a minute: a stop that returns sooner was not held. */
const startSecondInstance = (env: Record<string, string> = {}) =>
  startApp(
    loadConfig({
      DATABASE_URL: s.databaseUrl,
      GRPC_HOST: "127.0.0.1",
      GRPC_PORT: "0",
      HTTP_PORT: "0",
      SWEEP_INTERVAL_MS: "0",
      SHUTDOWN_GRACE_MS: "60000",
      BOOTSTRAP_API_KEY: s.apiKey,
      ...env,
    }),
    { log: pino({ level: "silent" }), now: s.clock.now },
  );

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
    const other = await startSecondInstance();
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

describe("a WatchEvents stream whose key is revoked", () => {
  it("ends with api_key_revoked within API_KEY_CACHE_TTL_MS, as new calls are refused; another key's stream goes on", async () => {
    const other = await startSecondInstance({ API_KEY_CACHE_TTL_MS: "1000" });
    const key = await s.createKey({ scope: "read" });
    const revoked = new TestWatcher(other.port, key.key, { customerId: "revoked-1" });
    const kept = new TestWatcher(other.port, s.apiKey, { customerId: "revoked-1" });
    await commitEvents(other, [testEvent(other, { customerId: "revoked-1" })]);
    await revoked.count(1);
    await kept.count(1);
    await s.revokeKey(key.prefix);
    await expectError(
      revoked.ended.then((e) => Promise.reject(e)),
      "api_key_revoked",
    );
    await commitEvents(other, [testEvent(other, { customerId: "revoked-1" })]);
    await kept.count(2);
    expect(revoked.events).toHaveLength(1);
    kept.close();
    await other.stop();
  });
});

describe("a grpc.health.v1.Health Watch stream", () => {
  it("hears NOT_SERVING, then ends with UNAVAILABLE when the server shuts down, instead of holding the shutdown", async () => {
    const other = await startSecondInstance();
    const client = new Client(`127.0.0.1:${other.port}`, credentials.createInsecure());
    const heard: string[] = [];
    const statusName = (bytes: Buffer) => ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"][bytes[1] ?? 0] ?? "?";
    const watch = client.makeServerStreamRequest(
      "/grpc.health.v1.Health/Watch",
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
    );
    const ended = new Promise<ServiceError>((resolve) => watch.on("error", resolve));
    watch.on("data", (bytes: Buffer) => heard.push(bytes.length === 0 ? "UNKNOWN" : statusName(bytes)));
    await vi.waitFor(() => expect(heard).toContain("SERVING"));
    // SHUTDOWN_GRACE_MS is a minute: the stop returns before because the watch ends at once.
    await other.stop();
    expect((await ended).code).toBe(status.UNAVAILABLE);
    expect(heard.at(-1)).toBe("NOT_SERVING");
    client.close();
  });
});
