import { createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/domain/api-key.js";
import mysql, { type RowDataPacket } from "mysql2/promise";
import { SERVER_URL, uniqueDatabaseUrl } from "../support/database.js";
import { collect, spawnMain } from "../support/spawn.js";

// A port another process holds stops the start with one line and exit code 1, like an
// unreachable database: never a stack trace.
let blocker: Server;
let taken: number;
const database = uniqueDatabaseUrl("vb_ports");

beforeAll(async () => {
  blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
  const address = blocker.address();
  taken = typeof address === "object" && address ? address.port : 0;
});
afterAll(async () => {
  await new Promise<void>((resolve) => blocker.close(() => resolve()));
  await database.drop();
});

describe("a port in use", () => {
  it.each([
    ["gRPC", { GRPC_PORT: "taken" }],
    ["HTTP", { GRPC_PORT: "0", HTTP_PORT: "taken" }],
    ["metrics", { GRPC_PORT: "0", METRICS_PORT: "taken" }],
  ])("%s: one line on standard error, exit 1", async (_name, ports) => {
    const env = Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, v === "taken" ? String(taken) : v]));
    const exit = await collect(
      spawnMain({
        DATABASE_URL: database.url,
        GRPC_HOST: "127.0.0.1",
        BOOTSTRAP_API_KEY: generateApiKey("test"),
        SWEEP_INTERVAL_MS: "0",
        ...env,
      }),
    ).exited;
    expect({ code: exit.code, stderr: exit.stderr }).toEqual({
      code: 1,
      stderr: `velobase-billing: cannot listen on 127.0.0.1:${taken}: the address is already in use\n`,
    });
  });
});

describe("a host that cannot be listened on", () => {
  it.each([
    // ENOTFOUND, or EAI_AGAIN on a machine with no name server at all.
    ["a name that does not resolve", "no-such-host.invalid", "no-such-host\\.invalid does not resolve \\((ENOTFOUND|EAI_AGAIN)\\)"],
    ["an address of another machine (TEST-NET-1)", "192.0.2.1", "192\\.0\\.2\\.1 is no address of this machine \\(EADDRNOTAVAIL\\)"],
  ])("%s: one line and exit code 1 before the database is created", async (_name, host, said) => {
    const fresh = uniqueDatabaseUrl("vb_host");
    try {
      const exit = await collect(spawnMain({ DATABASE_URL: fresh.url, GRPC_HOST: host, GRPC_PORT: "0", SWEEP_INTERVAL_MS: "0" })).exited;
      expect(exit.code).toBe(1);
      expect(exit.stderr).toMatch(new RegExp(`^velobase-billing: cannot listen \\(GRPC_HOST, HTTP_HOST\\): ${said}\\n$`));
      const connection = await mysql.createConnection(SERVER_URL);
      try {
        const [rows] = await connection.query<RowDataPacket[]>("SHOW DATABASES LIKE ?", [fresh.name]);
        expect(rows).toEqual([]);
      } finally {
        await connection.end();
      }
    } finally {
      await fresh.drop();
    }
  });
});
