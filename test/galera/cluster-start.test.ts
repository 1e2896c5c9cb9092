import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { LeaseKeeper } from "../../src/operations/events/lease-keeper.js";
import { openDatabase } from "../../src/store/database.js";
import { withLease } from "../../src/store/leases-store.js";
import { ROOT } from "../support/spawn.js";
import { connectTo, dropDatabase, nodeUrl, uniqueDatabaseName } from "./cluster.js";

/** The service's migrations plus a slow last one, so two instances starting together overlap. */
function migrationsWithASlowOne(): string {
  const folder = mkdtempSync(join(tmpdir(), "vb-migrations-"));
  cpSync(join(ROOT, "src/store/migrations"), folder, { recursive: true });
  const journalFile = join(folder, "meta/_journal.json");
  const journal = JSON.parse(readFileSync(journalFile, "utf8")) as { entries: Array<{ idx: number; when: number; tag: string }> };
  const last = journal.entries.reduce((max, e) => Math.max(max, e.when), 0);
  journal.entries.push({ idx: journal.entries.length, version: "5", when: last + 1000, tag: "9999_slow", breakpoints: true } as never);
  writeFileSync(journalFile, JSON.stringify(journal));
  writeFileSync(
    join(folder, "9999_slow.sql"),
    "SELECT SLEEP(3);\n--> statement-breakpoint\nCREATE TABLE `slow_marker` (`id` int NOT NULL PRIMARY KEY);\n",
  );
  return folder;
}

describe("cluster-safe start", () => {
  const name = uniqueDatabaseName("vb_start");
  const folder = migrationsWithASlowOne();
  afterAll(async () => {
    rmSync(folder, { recursive: true, force: true });
    await dropDatabase(name);
  });

  it("two instances starting together on two nodes apply each migration once, one after the other", async () => {
    const opened = await Promise.all(
      [1, 2].map((node) => openDatabase(nodeUrl(node as 1 | 2, name), { poolSize: 2, migrationsFolder: folder })),
    );
    for (const database of opened) await database.close();
    const connection = await connectTo(3);
    try {
      await connection.query("SET SESSION wsrep_sync_wait = 1");
      const [applied] = await connection.query(`SELECT hash, COUNT(*) AS n FROM \`${name}\`.__drizzle_migrations GROUP BY hash`);
      const entries = JSON.parse(readFileSync(join(folder, "meta/_journal.json"), "utf8")).entries as unknown[];
      expect((applied as Array<{ n: number }>).map((r) => Number(r.n))).toEqual(Array(entries.length).fill(1));
      const [marker] = await connection.query(`SHOW TABLES FROM \`${name}\` LIKE 'slow_marker'`);
      expect(marker).toHaveLength(1);
      const [leases] = await connection.query(`SELECT name FROM \`${name}\`.leases`);
      expect(leases).toEqual([]);
    } finally {
      await connection.end();
    }
  });

  it("a withLease and LeaseKeepers on three nodes take one lease row in turn", async () => {
    const [one, two, three] = await Promise.all(
      ([1, 2, 3] as const).map((node) => openDatabase(nodeUrl(node, name), { poolSize: 2, migrationsFolder: folder })),
    );
    if (!one || !two || !three) throw new Error("expected three databases");
    try {
      const heldMeanwhile = await withLease(one.pool, "galera-turns", () =>
        Promise.all([new LeaseKeeper(two, "galera-turns", "keeper-2").held(), new LeaseKeeper(three, "galera-turns", "keeper-3").held()]),
      );
      expect(heldMeanwhile).toEqual([false, false]);

      // Node 2 may not have applied node 1's release yet: the keeper tries until it has.
      const keeper = new LeaseKeeper(two, "galera-turns", "keeper-2", 60_000);
      await expect.poll(() => new LeaseKeeper(two, "galera-turns", "keeper-2", 60_000).held(), { timeout: 10_000 }).toBe(true);
      let ran = false;
      const waiting = withLease(three.pool, "galera-turns", async () => {
        ran = true;
      });
      await sleep(1_000);
      expect(ran).toBe(false);
      expect(await keeper.held()).toBe(true);
      await keeper.release();
      await waiting;
      expect(ran).toBe(true);
    } finally {
      await Promise.all([one, two, three].map((database) => database.close()));
    }
  });
});
