import { randomBytes } from "node:crypto";
import type { ServiceError } from "@grpc/grpc-js";
import { pino, type Logger } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { expectError, TestClient } from "../support/client.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { TcpProxy } from "../support/tcp-proxy.js";

// Token buckets per key, sized by the key's project. Every test that uses the machine's Redis
// has its own key prefix, so parallel runs never share a bucket.
const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const uniquePrefix = () => `vb-test:${Date.now().toString(36)}:${randomBytes(4).toString("hex")}`;

const running: Array<{ stop(): Promise<void> }> = [];
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop();
});

async function server(env: Record<string, string> = {}, log?: Logger): Promise<TestServer> {
  const s = await startTestServer(env, log ? { log } : {});
  running.push(s);
  return s;
}

/** A client of a key of a fresh project with this rate and burst (left out: as the CLI chooses it). */
async function limitedClient(s: TestServer, ratePerSecond: number, burst?: number): Promise<{ client: TestClient; key: string }> {
  const project = await s.createProject({ ratePerSecond, ...(burst === undefined ? {} : { burst }) });
  const { key } = await s.createKey({ project });
  return { client: s.clientWith(key), key };
}

/** One admitted call: an unknown customer is a fine answer, it passed the limiter. */
const admitted = (client: TestClient) => expectError(client.call("getCustomer", { customerId: "nobody" }), "customer_not_found");

/** Expects rate_limit_exceeded; returns the wait RetryInfo carries, in ms. */
async function refusedFor(client: TestClient): Promise<number> {
  const call = client.call("getCustomer", { customerId: "nobody" });
  const metadata = await expectError(call, "rate_limit_exceeded");
  const error = (await call.catch((e: unknown) => e)) as ServiceError;
  const delay = decodeStatusDetails(error.metadata).retry?.retryDelay;
  const ms = Number(delay?.seconds ?? 0n) * 1000 + (delay?.nanos ?? 0) / 1e6;
  expect(Number(metadata.retry_delay_ms)).toBe(ms);
  return ms;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Calls as fast as 4 callers can for `ms`; returns how many passed the limiter. */
async function hammer(client: TestClient, ms: number): Promise<number> {
  const end = Date.now() + ms;
  let passed = 0;
  const caller = async () => {
    while (Date.now() < end) {
      const code = await client.call("getCustomer", { customerId: "nobody" }).then(
        () => "ok",
        (e: unknown) => decodeStatusDetails((e as ServiceError).metadata).detail?.code,
      );
      if (code === "customer_not_found") passed++;
      else expect(code).toBe("rate_limit_exceeded");
    }
  };
  await Promise.all(Array.from({ length: 4 }, caller));
  return passed;
}

describe("the sustained rate is the configured one, not twice it", () => {
  for (const backend of ["memory", "redis"] as const) {
    it(`rate 10, burst 20, hammered for 2.8 s (${backend}): at least the burst, at most burst + rate × T`, async () => {
      const s = await server(backend === "redis" ? { REDIS_URL, RATE_LIMIT_KEY_PREFIX: uniquePrefix() } : {});
      const { client } = await limitedClient(s, 10, 20);
      const passed = await hammer(client, 2_800);
      // A token bucket passes 20 + 10 × 2.8 = 48; the windows pass 30 (20, then 10 a second
      // later, then none until the 3-second window renews); a limit refilling twice as fast, 60.
      expect(passed).toBeGreaterThanOrEqual(20);
      expect(passed).toBeLessThanOrEqual(48);
    }, 15_000);
  }
});

describe("rate limits in process memory (no REDIS_URL)", () => {
  it("answers rate_limit_exceeded with the real wait after the burst, and recovers after it", async () => {
    const s = await server();
    const { client } = await limitedClient(s, 1, 3);
    for (let i = 0; i < 3; i++) await admitted(client);
    const waitMs = await refusedFor(client);
    expect(waitMs).toBeGreaterThan(0);
    expect(waitMs).toBeLessThanOrEqual(1000);
    await sleep(waitMs + 20);
    await admitted(client);
  });

  it("limits each key on its own, and --rate 0 means unlimited", async () => {
    const s = await server();
    const one = await limitedClient(s, 1, 1);
    await admitted(one.client);
    await refusedFor(one.client);
    const sameProject = s.clientWith((await s.createKey()).key);
    await admitted(sameProject);
    const unlimited = await limitedClient(s, 0);
    for (let i = 0; i < 50; i++) await admitted(unlimited.client);
  });
});

describe("rate limits in Redis", () => {
  it("holds across two server instances sharing Redis", async () => {
    const s = await server({ REDIS_URL, RATE_LIMIT_KEY_PREFIX: uniquePrefix() });
    const other = await s.startAnotherInstance();
    const { client: onFirst, key } = await limitedClient(s, 1, 3);
    const onSecond = new TestClient(other.port, key);
    running.push({ stop: async () => onSecond.close() });

    await admitted(onFirst);
    await admitted(onSecond);
    await admitted(onFirst);
    const waitMs = await refusedFor(onSecond);
    await refusedFor(onFirst);
    await sleep(waitMs + 20);
    await admitted(onSecond);
  });

  it("lets calls through when Redis cannot be reached, with one warning and a metric, and limits again once it is back", async () => {
    const redisPort = Number(new URL(REDIS_URL).port || 6379);
    const proxy = new TcpProxy(redisPort, new URL(REDIS_URL).hostname);
    await proxy.start();
    running.push({ stop: () => proxy.cut() });
    const lines: string[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
    const s = await server({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, RATE_LIMIT_KEY_PREFIX: uniquePrefix() }, log);
    const { client } = await limitedClient(s, 1, 1);
    await admitted(client);
    await refusedFor(client);

    await proxy.cut();
    for (let i = 0; i < 20; i++) await admitted(client);
    const warnings = lines.filter((l) => l.includes("Redis unreachable"));
    expect(warnings).toHaveLength(1);
    // Which Redis, never its URL's credentials.
    expect(JSON.parse(warnings[0] ?? "{}")).toMatchObject({ server: `127.0.0.1:${proxy.port}` });
    const metrics = await s.app.metrics.registry.getSingleMetricAsString("billing_rate_limit_fail_open_total");
    // The 20 calls admitted while Redis was cut, no more.
    expect(Number(/billing_rate_limit_fail_open_total (\d+)/.exec(metrics)?.[1])).toBe(20);

    await proxy.restore();
    await expect
      .poll(
        () =>
          client
            .call("getCustomer", { customerId: "nobody" })
            .catch((e: unknown) => decodeStatusDetails((e as ServiceError).metadata).detail?.code),
        {
          timeout: 15_000,
          interval: 100,
        },
      )
      .toBe("rate_limit_exceeded");
    expect(lines.filter((l) => l.includes("Redis reachable again"))).toHaveLength(1);
  });

  it("lets calls through when nothing listens at REDIS_URL", async () => {
    const nobody = new TcpProxy(1);
    const port = await nobody.start();
    await nobody.cut();
    const s = await server({ REDIS_URL: `redis://127.0.0.1:${port}`, RATE_LIMIT_KEY_PREFIX: uniquePrefix() });
    const { client } = await limitedClient(s, 1, 1);
    for (let i = 0; i < 5; i++) await admitted(client);
    const deposit = await s.client.call("deposit", { customerId: "payer", amount: 10n });
    expect(deposit.balance?.available).toBe(10n);
  });
});
