import { afterAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/store/database.js";
import { clusterUrl, dropDatabase, uniqueDatabaseName } from "./cluster.js";

const name = uniqueDatabaseName("vb_pool");
afterAll(async () => {
  await dropDatabase(name);
});

async function portsServing(selector: "order" | "round_robin", order: Array<1 | 2 | 3>): Promise<number[]> {
  const database = await openDatabase(clusterUrl(order, name), { migrate: false, nodeSelector: selector, poolSize: 1 });
  try {
    const ports: number[] = [];
    for (let i = 0; i < 6; i++) {
      const [rows] = await database.pool.query("SELECT @@port AS port");
      ports.push(Number((rows as Array<{ port: unknown }>)[0]?.port));
    }
    expect(database.galera).toBe(true);
    expect(await database.probe()).toEqual({ ok: true });
    return ports;
  } finally {
    await database.close();
  }
}

describe("several hosts in DATABASE_URL", () => {
  it("order: every connection from the first node named", async () => {
    expect(await portsServing("order", [2, 3, 1])).toEqual([3312, 3312, 3312, 3312, 3312, 3312]);
  });

  it("round robin: each node in turn", async () => {
    expect(new Set(await portsServing("round_robin", [1, 2, 3]))).toEqual(new Set([3311, 3312, 3313]));
  });

  it("a host that refuses connections is passed over for the next one", async () => {
    const database = await openDatabase(`mysql://root@127.0.0.1:1,127.0.0.1:3313/${name}`, { migrate: false, poolSize: 1 });
    try {
      const [rows] = await database.pool.query("SELECT @@port AS port");
      expect(rows).toEqual([{ port: "3313" }]);
      expect(await database.probe()).toEqual({ ok: true });
    } finally {
      await database.close();
    }
  });
});
