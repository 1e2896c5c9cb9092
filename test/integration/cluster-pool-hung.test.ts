import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterPool } from "../../src/store/cluster-pool.js";
import { TcpProxy } from "../support/tcp-proxy.js";

// A node that hangs (a frozen host, a partition that sends no reset) keeps its connections open
// and answers nothing. Two "nodes" here are the same MariaDB, one behind a proxy that can freeze.

const proxy = new TcpProxy(3306);
let pool: ClusterPool;
beforeAll(async () => {
  await proxy.start();
  pool = new ClusterPool({
    hosts: [
      { host: "127.0.0.1", port: proxy.port },
      { host: "127.0.0.1", port: 3306 },
    ],
    connection: { user: "root", connectTimeout: 2_000, multipleStatements: true },
    selector: "order",
    sessionSetup: [],
    causalReads: false,
  });
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
    expect(await pool.probeNodes()).toBe(true);
    const before = await nodeOf();
    expect(before).toHaveLength(1);
    proxy.freeze();
    expect(await pool.probeNodes()).toBe(true);
    // Served by the second node: a new connection (the first node's pooled one would hang).
    const after = await nodeOf();
    expect(after[0]?.id).not.toBe(before[0]?.id);
  });

  it("gives it back its place once it answers again: the first node in URL order is used first", async () => {
    proxy.thaw();
    expect(await pool.probeNodes()).toBe(true);
    const connection = await pool.getConnection();
    try {
      const config = (connection.connection as unknown as { config: { port: number } }).config;
      expect(config.port).toBe(proxy.port);
    } finally {
      connection.release();
    }
  });
});
