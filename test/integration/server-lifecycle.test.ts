import { readFileSync } from "node:fs";
import { credentials, loadPackageDefinition, type ServiceError, status } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueDatabaseUrl } from "../support/database.js";
import { collect, ROOT, spawnMain, waitForOutput } from "../support/spawn.js";
import { TestClient } from "../support/client.js";
import { lockingReadWaits, waitFor } from "../support/waiting.js";
import { startTestServer, type TestServer } from "../support/server.js";

type Callback<T> = (error: ServiceError | null, value: T) => void;
interface ReflectionStream {
  on(event: "data", listener: (m: { listServicesResponse?: { service: Array<{ name: string }> } }) => void): void;
  on(event: "error", listener: (e: Error) => void): void;
  write(message: object): void;
  end(): void;
}
type ClientCtor<T> = new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => T;

function loadClient<T>(file: string, path: string[]): ClientCtor<T> {
  const definition = loadPackageDefinition(loadSync(`${ROOT}/${file}`, { enums: String }));
  let node: unknown = definition;
  for (const part of path) node = (node as Record<string, unknown>)[part];
  return node as ClientCtor<T>;
}

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

describe("operators' tools", () => {
  it("reflection lists the BillingService, SlotService and EntitlementService", async () => {
    const Reflection = loadClient<{ serverReflectionInfo(): ReflectionStream }>(
      "node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto",
      ["grpc", "reflection", "v1", "ServerReflection"],
    );
    const client = new Reflection(`127.0.0.1:${s.app.port}`, credentials.createInsecure());
    const names = await new Promise<string[]>((resolve, reject) => {
      const stream = client.serverReflectionInfo();
      stream.on("data", (m) => {
        resolve((m.listServicesResponse?.service ?? []).map((x) => x.name));
        stream.end();
      });
      stream.on("error", reject);
      stream.write({ listServices: "" });
    });
    expect(names).toEqual(
      expect.arrayContaining([
        "velobase.billing.v1.BillingService",
        "velobase.billing.v1.SlotService",
        "velobase.billing.v1.EntitlementService",
      ]),
    );
  });

  it("health answers SERVING once the database is reachable", async () => {
    const Health = loadClient<{ check(req: object, cb: Callback<{ status: string }>): void }>(
      "node_modules/grpc-health-check/proto/health/v1/health.proto",
      ["grpc", "health", "v1", "Health"],
    );
    const client = new Health(`127.0.0.1:${s.app.port}`, credentials.createInsecure());
    const check = (service: string) =>
      new Promise<string>((resolve, reject) => client.check({ service }, (e, r) => (e ? reject(e) : resolve(r.status))));
    await expect.poll(() => check(""), { timeout: 5000 }).toBe("SERVING");
    expect(await check("velobase.billing.v1.BillingService")).toBe("SERVING");
  });
});

describe("start-up", () => {
  it("exits 1 with one clear line when the database is unreachable", async () => {
    const child = spawnMain({ DATABASE_URL: "mysql://root:hunter2@127.0.0.1:1/velobase", GRPC_PORT: "0" });
    const exit = await collect(child).exited;
    expect(exit.code).toBe(1);
    const lines = exit.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^velobase-billing: cannot reach the database at mysql:\/\/root:\*\*\*@127\.0\.0\.1:1\/velobase: /);
    expect(exit.stderr + exit.stdout).not.toContain("hunter2");
  });

  it.each([
    ["GRPC_PORT", "not-a-port", "must be a whole number"],
    // A stray space is a mistake, not 0 (which would switch the sweeper off), nor another base.
    ["SWEEP_INTERVAL_MS", " ", "must be a whole number"],
    ["GRPC_PORT", "0x1F90", "must be a whole number"],
    ["GRPC_PORT", "8e3", "must be a whole number"],
    ["GRPC_HOST", "not a host", "must be a host name or an IPv4 or IPv6 address"],
    ["TRUSTED_PROXIES", "10.0.0.0/8, lb.internal", "invalid IP address: lb.internal"],
  ])("exits 2 on a bad configuration value: %s=%j", async (name, value, message) => {
    const exit = await collect(spawnMain({ [name]: value })).exited;
    expect(exit.code).toBe(2);
    expect(exit.stderr.trim()).toBe(`velobase-billing: invalid configuration: ${name}: ${message}`);
  });

  it("listens on an IPv6 GRPC_HOST, written with or without brackets, and says which port metrics took", async () => {
    const db = uniqueDatabaseUrl("vb_ipv6");
    try {
      for (const host of ["::1", "[::1]"]) {
        const child = spawnMain({ DATABASE_URL: db.url, GRPC_PORT: "0", GRPC_HOST: host, METRICS_PORT: "0", SWEEP_INTERVAL_MS: "0" });
        const out = collect(child);
        await waitForOutput(() => out.output().stdout, "velobase-billing listening");
        const metricsPort = /"metricsPort":(\d+)/.exec(out.output().stdout)?.[1];
        const httpPort = /"httpPort":(\d+)/.exec(out.output().stdout)?.[1];
        expect(Number(metricsPort)).toBeGreaterThan(0);
        expect((await fetch(`http://[::1]:${metricsPort}/metrics?from=scraper`)).status).toBe(200);
        expect((await fetch(`http://[::1]:${httpPort}/v1/health`)).status).toBe(200);
        child.kill("SIGTERM");
        expect((await out.exited).code, host).toBe(0);
      }
    } finally {
      await db.drop();
    }
  });

  it("exits 1 with one line when GRPC_HOST names no address", async () => {
    const db = uniqueDatabaseUrl("vb_nohost");
    try {
      const exit = await collect(
        spawnMain({ DATABASE_URL: db.url, GRPC_HOST: "nosuchhost.invalid", GRPC_PORT: "0", SWEEP_INTERVAL_MS: "0" }),
      ).exited;
      expect(exit.code).toBe(1);
      expect(exit.stderr.trim().split("\n").at(-1)).toMatch(
        /^velobase-billing: cannot listen \(GRPC_HOST, HTTP_HOST\): .*nosuchhost\.invalid/,
      );
    } finally {
      await db.drop();
    }
  });

  it("stops once the grace is over even while a call still waits on a lock (the pool is not waited for)", async () => {
    const closing: TestClient[] = [];
    const other = await s.startAnotherInstance({ SHUTDOWN_GRACE_MS: "300", DB_LOCK_WAIT_TIMEOUT_S: "120" });
    const customerId = `stuck-${Date.now()}`;
    await s.client.call("deposit", { customerId, amount: 10n });
    const holder = await mysql.createConnection(s.databaseUrl);
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT id FROM customers WHERE customer_id = ? FOR UPDATE", [customerId]);
      const client = new TestClient(other.port, s.apiKey);
      const stuck = client.call("deduct", { customerId, transactionId: `stuck-${Date.now()}`, amount: 1n });
      const answered = stuck.then(
        () => "ok",
        (error: unknown) => (error as { code?: number }).code,
      );
      closing.push(client);
      await waitFor(() => lockingReadWaits(holder), "the Deduct to wait for the customer");
      // Resolves while the lock is still held, with the deduct's statement waiting on (up to 120 s):
      // the pool is not waited for, and the call is answered when the grace ends.
      await other.stop();
      expect(await answered).toBe(status.UNAVAILABLE);
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
      for (const c of closing) c.close();
    }
  });

  it("creates the database, migrates once, re-applies nothing on a second start, stops on SIGTERM", async () => {
    const db = uniqueDatabaseUrl("vb_start");
    try {
      for (let run = 0; run < 2; run++) {
        const child = spawnMain({ DATABASE_URL: db.url, GRPC_PORT: "0", GRPC_HOST: "127.0.0.1" });
        const out = collect(child);
        await waitForOutput(() => out.output().stdout, "velobase-billing listening");
        const { version } = JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")) as { version: string };
        expect(out.output().stdout).toContain(`"version":"${version}"`);
        // The HTTP API runs beside gRPC (HTTP_PORT=0 from spawnMain: a free port, logged).
        const httpPort = /"httpPort":(\d+)/.exec(out.output().stdout)?.[1];
        const health = async () => {
          const response = await fetch(`http://127.0.0.1:${httpPort}/v1/health`);
          return { status: response.status, body: (await response.json()) as unknown };
        };
        await expect.poll(health, { timeout: 5000 }).toEqual({ status: 200, body: { status: "ok" } });
        child.kill("SIGTERM");
        const exit = await out.exited;
        expect(exit.code).toBe(0);
        expect(exit.stdout).toContain('"signal":"SIGTERM"');
        // A clean stop ends its log with "stopped" (a log cut by a kill has no such last line).
        const last = JSON.parse(exit.stdout.trim().split("\n").at(-1) ?? "{}") as { msg?: string; signal?: string };
        expect({ msg: last.msg, signal: last.signal }).toEqual({ msg: "stopped", signal: "SIGTERM" });
      }
      const connection = await mysql.createConnection(db.url);
      const [rows] = await connection.query("SELECT COUNT(*) AS n FROM __drizzle_migrations");
      const [projects] = await connection.query("SELECT COUNT(*) AS n FROM projects");
      await connection.end();
      const journal = JSON.parse(readFileSync(`${ROOT}/src/store/migrations/meta/_journal.json`, "utf8")) as { entries: unknown[] };
      expect(Number((rows as Array<{ n: number }>)[0]?.n)).toBe(journal.entries.length);
      expect(Number((projects as Array<{ n: number }>)[0]?.n)).toBe(1);
    } finally {
      await db.drop();
    }
  });
});
