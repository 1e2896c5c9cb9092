import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterPool, outdatedNotReady, PROBE_TIMEOUT_MS } from "../../src/store/cluster-pool.js";
import { uniqueDatabaseUrl } from "../support/database.js";
import { startTestServer } from "../support/server.js";
import { TcpProxy } from "../support/tcp-proxy.js";

// A node that hangs (a frozen host, a partition that sends no reset) keeps its connections open
// and answers nothing. Two "nodes" here are the same MariaDB, one behind a proxy that can freeze.

const proxy = new TcpProxy(3306);
let pool: ClusterPool;

/** A pool over two "nodes": the proxy on `port` first, then MariaDB itself. */
const behind = (port: number, options: { connectTimeout?: number; statementTimeoutMs?: number } = {}) =>
  new ClusterPool({
    hosts: [
      { host: "127.0.0.1", port },
      { host: "127.0.0.1", port: 3306 },
    ],
    connection: { user: "root", connectTimeout: options.connectTimeout ?? 2_000, multipleStatements: true },
    selector: "order",
    sessionSetup: [],
    causalReads: false,
    ...(options.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: options.statementTimeoutMs }),
  });
beforeAll(async () => {
  await proxy.start();
  pool = behind(proxy.port);
});
afterAll(async () => {
  proxy.thaw();
  await pool?.end();
  await proxy.cut();
});

const nodeOf = async () => {
  const [rows] = await pool.query("SELECT @@port AS port, CONNECTION_ID() AS id");
  return rows as unknown as { port: number; id: number }[];
};

describe("a cluster pool whose first node hangs", () => {
  it("takes it out at the next probe, so calls go to the next node instead of hanging on its pooled connections", async () => {
    // A connection of the first node, released to the pool: the one the next query would take.
    expect(await pool.probeNodes()).toEqual({ ok: true });
    const before = await nodeOf();
    expect(before).toHaveLength(1);
    proxy.freeze();
    expect(await pool.probeNodes()).toEqual({ ok: true });
    // Served by the second node: a new connection (the first node's pooled one would hang).
    const after = await nodeOf();
    expect(after[0]?.id).not.toBe(before[0]?.id);
  });

  it("gives it back its place once it answers again: the first node in URL order is used first", async () => {
    proxy.thaw();
    // One ready probe is not enough: a node resumed after a freeze may not know yet it was
    // evicted. Nor are two at once: a probe sent during the freeze is answered on resuming.
    expect(await pool.probeNodes()).toEqual({ ok: true });
    expect(pool.nodesOut).toEqual([`127.0.0.1:${proxy.port}`]);
    expect(await pool.probeNodes()).toEqual({ ok: true });
    expect(pool.nodesOut).toEqual([`127.0.0.1:${proxy.port}`]);
    await sleep(PROBE_TIMEOUT_MS);
    expect(await pool.probeNodes()).toEqual({ ok: true });
    expect(pool.nodesOut).toEqual([]);
    const connection = await pool.getConnection();
    try {
      const config = (connection.connection as unknown as { config: { port: number } }).config;
      expect(config.port).toBe(proxy.port);
    } finally {
      connection.release();
    }
  });
});

describe("a statement waiting on a node that hangs", () => {
  it("fails over as soon as a probe takes the node out, not after the statement timeout: a read goes again", async () => {
    const hung = new TcpProxy(3306);
    const port = await hung.start();
    const fresh = behind(port, { statementTimeoutMs: 120_000 });
    try {
      const [before] = (await fresh.query("SELECT CONNECTION_ID() AS id"))[0] as unknown as { id: number }[];
      hung.freeze();
      const started = Date.now();
      // Takes the first node's pooled connection, and waits on it.
      const reading = fresh.query("SELECT CONNECTION_ID() AS id, 42 AS answer");
      expect(await fresh.probeNodes()).toEqual({ ok: true });
      expect(fresh.nodesOut).toEqual([`127.0.0.1:${port}`]);
      const [after] = (await reading)[0] as unknown as { id: number; answer: number }[];
      expect(after?.answer).toBe(42);
      expect(after?.id).not.toBe(before?.id);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      hung.thaw();
      await fresh.end();
      await hung.cut();
    }
  });
});

describe("which node answers ready", () => {
  it("not one in an older configuration of the primary component than another ready node: it was evicted and has not noticed", () => {
    expect(
      outdatedNotReady([
        { state: "ready", configuration: 7 },
        { state: "ready", configuration: 9 },
        { state: "unreachable", configuration: null },
        { state: "ready", configuration: 9 },
      ]),
    ).toEqual(["not_primary", "ready", "unreachable", "ready"]);
    // Not Galera (no configuration): every ready node is.
    expect(
      outdatedNotReady([
        { state: "ready", configuration: null },
        { state: "ready", configuration: null },
      ]),
    ).toEqual(["ready", "ready"]);
  });
});

describe("taking out a node with a connection still in its handshake", () => {
  it("neither throws outside the caller (mysql2 ending that pool would) nor fails the call: it goes to the next node", async () => {
    const hung = new TcpProxy(3306);
    const port = await hung.start();
    hung.freeze();
    const fresh = behind(port, { connectTimeout: 4_000 });
    try {
      const connecting = fresh.getConnection();
      expect(await fresh.probeNodes()).toEqual({ ok: true });
      expect(fresh.nodesOut).toEqual([`127.0.0.1:${port}`]);
      const connection = await connecting;
      expect((connection.connection as unknown as { config: { port: number } }).config.port).toBe(3306);
      connection.release();
    } finally {
      hung.thaw();
      await fresh.end();
      await hung.cut();
    }
  });
});

describe("a server on two nodes, one of which hangs", () => {
  it("runs a write and a read waiting on the hung node again on the other one once a probe takes it out", async () => {
    const hanging = new TcpProxy(3306);
    const port = await hanging.start();
    const db = uniqueDatabaseUrl("vb_failover");
    // A statement timeout of 110 s: what ends the waits here is the probe, every 100 ms.
    const s = await startTestServer({
      DATABASE_URL: `mysql://root@127.0.0.1:${port},127.0.0.1:3306/${db.name}`,
      HEALTH_CHECK_INTERVAL_MS: "100",
      DB_LOCK_WAIT_TIMEOUT_S: "100",
    });
    try {
      const customerId = `failover-${Date.now()}`;
      await s.client.call("deposit", { customerId, amount: 50n });
      hanging.freeze();
      const started = Date.now();
      const [deducted, read] = await Promise.all([
        s.client.call("deduct", { customerId, transactionId: `failover-tx-${Date.now()}`, amount: 20n }),
        s.client.call("getCustomer", { customerId }),
      ]);
      expect(deducted.balance?.available).toBe(30n);
      expect([50n, 30n]).toContain(read.balance?.available);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect((await s.client.call("getCustomer", { customerId })).balance?.available).toBe(30n);
    } finally {
      hanging.thaw();
      await s.stop();
      await hanging.cut();
      await db.drop();
    }
  });

  it("logs the node it takes out, by host and port, once, and once more when it is back; billing_db_node_in_use says the same", async () => {
    const hanging = new TcpProxy(3306);
    const port = await hanging.start();
    const db = uniqueDatabaseUrl("vb_nodes");
    const lines: { msg: string; node?: string }[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as { msg: string; node?: string }) });
    const s = await startTestServer(
      { DATABASE_URL: `mysql://root@127.0.0.1:${port},127.0.0.1:3306/${db.name}`, HEALTH_CHECK_INTERVAL_MS: "100" },
      { log },
    );
    const nodeLines = () => lines.filter((l) => l.msg.startsWith("database node")).map((l) => [l.msg, l.node]);
    const inUse = async () => {
      const text = await s.app.metrics.registry.getSingleMetricAsString("billing_db_node_in_use");
      return text.split("\n").filter((line) => line.startsWith("billing_db_node_in_use{"));
    };
    try {
      hanging.freeze();
      await expect
        .poll(nodeLines, { timeout: 10_000 })
        .toEqual([["database node taken out: calls go to the next one", `127.0.0.1:${port}`]]);
      expect(await inUse()).toEqual([
        `billing_db_node_in_use{node="127.0.0.1:${port}"} 0`,
        `billing_db_node_in_use{node="127.0.0.1:3306"} 1`,
      ]);
      const customerId = `nodes-${Date.now()}`;
      expect((await s.client.call("deposit", { customerId, amount: 5n })).balance?.available).toBe(5n);
      hanging.thaw();
      await expect.poll(nodeLines, { timeout: 10_000 }).toEqual([
        ["database node taken out: calls go to the next one", `127.0.0.1:${port}`],
        ["database node back in use", `127.0.0.1:${port}`],
      ]);
      expect(await inUse()).toEqual([
        `billing_db_node_in_use{node="127.0.0.1:${port}"} 1`,
        `billing_db_node_in_use{node="127.0.0.1:3306"} 1`,
      ]);
    } finally {
      hanging.thaw();
      await s.stop();
      await hanging.cut();
      await db.drop();
    }
  });
});

describe("a cluster pool none of whose nodes answers", () => {
  it("says why in its probe's outcome: each node's state, and the first node's failure as the cause", async () => {
    const [a, b] = [new TcpProxy(3306), new TcpProxy(3306)];
    const ports = [await a.start(), await b.start()];
    await Promise.all([a.cut(), b.cut()]);
    const none = new ClusterPool({
      hosts: ports.map((port) => ({ host: "127.0.0.1", port })),
      connection: { user: "root", connectTimeout: 1_000 },
      selector: "order",
      sessionSetup: [],
      causalReads: false,
    });
    try {
      const outcome = await none.probeNodes();
      expect(outcome.ok).toBe(false);
      const error = outcome.ok ? null : (outcome.error as Error & { cause?: { code?: string } });
      expect(error?.message).toBe(`no node may serve: 127.0.0.1:${ports[0]} unreachable, 127.0.0.1:${ports[1]} unreachable`);
      // The proxies accept and close at once (a closed port would refuse: ECONNREFUSED).
      expect(error?.cause?.code).toBe("PROTOCOL_CONNECTION_LOST");
    } finally {
      await none.end();
    }
  });
});
