import { readFileSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseKeeper } from "../../src/operations/events/lease-keeper.js";
import { type Database, openDatabase } from "../../src/store/database.js";
import { tryAcquireLease, withLease } from "../../src/store/leases-store.js";
import { databaseMigratedThrough, uniqueDatabaseUrl } from "../support/database.js";
import { collect, ROOT, spawnMain } from "../support/spawn.js";

// One table, one primitive: the start's one-time work (withLease) and the running singletons
// (LeaseKeeper) take the same rows of `leases`, on any name.

/** An owner this process's withLease writes (leaseOwnerId: host, pid, a tag of 12 hex digits). */
const OWN_OWNER = new RegExp(
  `^${hostname()
    .slice(0, 64)
    .replace(/[.*+?^$()|[\]\\{}]/g, "\\$&")}:${process.pid}:[0-9a-f]{12}$`,
);

/** Long enough for a waiting withLease to have tried several times (it polls every 250 ms). */
const SEVERAL_POLLS_MS = 1_000;

const db = uniqueDatabaseUrl("vb_leases");
let database: Database;
beforeAll(async () => {
  database = await openDatabase(db.url, { poolSize: 4 });
});
afterAll(async () => {
  await database?.close();
  await db.drop();
});

const rowsOf = async (name: string) => {
  const [rows] = await database.pool.query("SELECT owner FROM leases WHERE name = ?", [name]);
  return (rows as Array<{ owner: string }>).map((r) => r.owner);
};

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

describe("one lease for the start's one-time work and the running singletons", () => {
  it("two withLease holders of one name take turns; a LeaseKeeper or another owner cannot take it meanwhile", async () => {
    const log: string[] = [];
    const first = gate();
    const firstDone = withLease(database.pool, "turns", async () => {
      log.push("first in");
      await first.opened;
      log.push("first out");
    });
    await expect.poll(() => log).toEqual(["first in"]);
    const [holder] = await rowsOf("turns");
    expect(holder).toMatch(OWN_OWNER);

    const secondDone = withLease(database.pool, "turns", async () => {
      log.push("second in");
      return rowsOf("turns");
    });
    expect(await new LeaseKeeper(database, "turns", "keeper", 60_000).held()).toBe(false);
    expect(await tryAcquireLease(database.pool, "turns", "outsider", 60_000)).toBe(false);
    await sleep(SEVERAL_POLLS_MS);
    expect(log).toEqual(["first in"]);

    first.open();
    await firstDone;
    const [second] = await secondDone;
    expect(log).toEqual(["first in", "first out", "second in"]);
    expect(second).not.toBe(holder);
    expect(await rowsOf("turns")).toEqual([]);
  });

  it("a LeaseKeeper takes over a lease whose holder crashed; withLease waits for a live keeper and runs once it lets go", async () => {
    const crashed = new LeaseKeeper(database, "shared", "crashed", 60_000);
    expect(await crashed.held()).toBe(true);
    await database.pool.query("UPDATE leases SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE name = 'shared'");

    const keeper = new LeaseKeeper(database, "shared", "keeper", 60_000);
    expect(await keeper.held()).toBe(true);
    expect(await rowsOf("shared")).toEqual(["keeper"]);

    let ran = false;
    const said: Array<string | null> = [];
    const waiting = withLease(
      database.pool,
      "shared",
      async () => {
        ran = true;
        return rowsOf("shared");
      },
      { waiting: (_waitedMs, holder) => said.push(holder), saidEveryMs: SEVERAL_POLLS_MS / 2 },
    );
    await sleep(SEVERAL_POLLS_MS);
    expect(ran).toBe(false);
    // Said while it waits, naming the live holder (the first key's and the migrations' wait line).
    expect(said.length).toBeGreaterThan(0);
    expect(new Set(said)).toEqual(new Set(["keeper"]));
    await keeper.release();
    const [owner] = await waiting;
    expect(owner).toMatch(OWN_OWNER);
    expect(await rowsOf("shared")).toEqual([]);
  });

  it("a database with no migration pending opens without the migrations lease, even while a stuck holder keeps it alive", async () => {
    await database.pool.query(
      "INSERT INTO leases (name, owner, expires_at) VALUES ('migrations', 'stuck:1:abc', NOW(3) + INTERVAL 60 SECOND)",
    );
    try {
      const again = await openDatabase(db.url, { poolSize: 2 });
      await again.close();
      expect(await rowsOf("migrations")).toEqual(["stuck:1:abc"]);
    } finally {
      await database.pool.query("DELETE FROM leases WHERE name = 'migrations'");
    }
  });

  it("withLease takes over the lease of a crashed holder once it has expired", async () => {
    expect(await tryAcquireLease(database.pool, "left-behind", "crashed", 60_000)).toBe(true);
    await database.pool.query("UPDATE leases SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE name = 'left-behind'");
    // The row while it runs is its own (leaseOwnerId: host:pid:tag), not the crashed holder's.
    expect(await withLease(database.pool, "left-behind", () => rowsOf("left-behind"))).toEqual([expect.stringMatching(OWN_OWNER)]);
    expect(await rowsOf("left-behind")).toEqual([]);
  });
});

describe("a database from before the one lease table", () => {
  const old = uniqueDatabaseUrl("vb_leases_old");
  afterAll(async () => {
    await old.drop();
  });

  /** Migrations up to 0015 with 0012 as it was first applied (`leases` without IF NOT EXISTS). */
  async function migrateAsBefore(): Promise<void> {
    const connection = await databaseMigratedThrough(old, 15, (dir) => {
      const eventsPath = join(dir, "0012_events.sql");
      const events = readFileSync(eventsPath, "utf8");
      const asFirstApplied = events.replace("CREATE TABLE IF NOT EXISTS `leases`", "CREATE TABLE `leases`");
      expect(asFirstApplied).not.toBe(events);
      writeFileSync(eventsPath, asFirstApplied);
    });
    try {
      // What the earlier versions left: their start-up lease table with a live holder's row, and a stamper's lease.
      await connection.query(
        `CREATE TABLE service_leases (purpose VARCHAR(64) NOT NULL PRIMARY KEY, owner CHAR(32) NOT NULL, expires_at DATETIME(3) NOT NULL) ENGINE=InnoDB;
         INSERT INTO service_leases VALUES ('migrations', REPEAT('a', 32), NOW(3) + INTERVAL 30 SECOND);
         INSERT INTO leases VALUES ('event_stamper', 'old-host:1:abcdef', NOW(3) + INTERVAL 30 SECOND);`,
      );
    } finally {
      await connection.end();
    }
  }

  it("migrates under a lease in `leases`, drops service_leases and keeps the singletons' rows", async () => {
    await migrateAsBefore();
    const upgraded = await openDatabase(old.url, { poolSize: 2 });
    try {
      const [applied] = await upgraded.pool.query("SELECT COUNT(*) AS n FROM __drizzle_migrations");
      const journal = JSON.parse(readFileSync(`${ROOT}/src/store/migrations/meta/_journal.json`, "utf8")) as { entries: unknown[] };
      expect(Number((applied as Array<{ n: string }>)[0]?.n)).toBe(journal.entries.length);
      const [serviceLeases] = await upgraded.pool.query("SHOW TABLES LIKE 'service_leases'");
      expect(serviceLeases).toEqual([]);
      const [leases] = await upgraded.pool.query("SELECT name, owner FROM leases");
      expect(leases).toEqual([{ name: "event_stamper", owner: "old-host:1:abcdef" }]);
      expect(await withLease(upgraded.pool, "bootstrap", async () => "ran")).toBe("ran");
    } finally {
      await upgraded.close();
    }
  });
});

describe("a migration that outlasts the lease's life", () => {
  const old = uniqueDatabaseUrl("vb_leases_long");
  afterAll(async () => {
    await old.drop();
  });

  it("keeps its lease renewed even with DB_POOL_SIZE=1, so a second instance waits instead of running it too", async () => {
    // The database as a build with migrations up to 0016 left it.
    await (await databaseMigratedThrough(old, 16)).end();
    // Another session reading `events` keeps 0017's ALTER TABLE waiting: a migration that takes long.
    const blocker = await mysql.createConnection(old.url);
    await blocker.query("BEGIN");
    await blocker.query("SELECT COUNT(*) FROM events");
    // Read from a connection of its own: the blocker's transaction sees its first snapshot.
    const watcher = await mysql.createConnection(old.url);
    const lease = async () => {
      const [rows] = await watcher.query("SELECT owner, expires_at FROM leases WHERE name = 'migrations'");
      return (rows as Array<{ owner: string; expires_at: Date }>)[0];
    };
    const first = openDatabase(old.url, { poolSize: 1 });
    let firstTaken: { owner: string; expires_at: Date } | undefined;
    for (let i = 0; i < 40 && firstTaken === undefined; i++) {
      firstTaken = await lease();
      if (firstTaken === undefined) await sleep(250);
    }
    if (!firstTaken) throw new Error("the first instance took no migrations lease within 10 s");
    const taken = firstTaken;
    const second = openDatabase(old.url, { poolSize: 2 });
    // A renewal comes every 10 s, well inside the lease's 30 s: the row changes once it came (its
    // owner too, had the second instance taken the lease over instead).
    let renewed = taken;
    try {
      for (const deadline = Date.now() + 25_000; renewed.expires_at.getTime() === taken.expires_at.getTime(); await sleep(250)) {
        if (Date.now() > deadline) throw new Error("the migrations lease was not renewed within 25 s");
        renewed = (await lease()) ?? taken;
      }
    } finally {
      await blocker.query("COMMIT");
      await Promise.all([blocker.end(), watcher.end()]);
    }
    const [a, b] = await Promise.all([first, second]);
    try {
      expect(renewed.owner).toBe(taken.owner);
      expect(renewed.expires_at.getTime()).toBeGreaterThan(taken.expires_at.getTime());
      const [applied] = await a.pool.query("SELECT COUNT(*) AS n FROM __drizzle_migrations");
      const journal = JSON.parse(readFileSync(`${ROOT}/src/store/migrations/meta/_journal.json`, "utf8")) as { entries: unknown[] };
      expect(Number((applied as Array<{ n: string }>)[0]?.n)).toBe(journal.entries.length);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 60_000);
});

describe("a stop asked for while a start waits for another instance's migrations", () => {
  const waiting = uniqueDatabaseUrl("vb_leases_stop");
  afterAll(async () => {
    await waiting.drop();
  });

  const pendingOf = async (connection: mysql.Connection) => {
    const [applied] = await connection.query("SELECT COUNT(*) AS n FROM __drizzle_migrations");
    const journal = JSON.parse(readFileSync(`${ROOT}/src/store/migrations/meta/_journal.json`, "utf8")) as { entries: unknown[] };
    return journal.entries.length - Number((applied as Array<{ n: string }>)[0]?.n);
  };

  it("ends a first connection to a server that does not answer, with its reason, before the connect timeout", async () => {
    // Accepts and never speaks: the client waits for the server's greeting until its connect timeout (10 s).
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const stop = new AbortController();
      const reason = new Error("asked to stop");
      const opening = openDatabase(`mysql://root@127.0.0.1:${port}/never`, { poolSize: 2, signal: stop.signal });
      await sleep(SEVERAL_POLLS_MS);
      stop.abort(reason);
      await expect(opening).rejects.toBe(reason);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("ends the wait with its reason (openDatabase), and the process with exit 0 and one line (SIGTERM), migrating nothing", async () => {
    // One migration pending, and a live holder of the migrations lease (another instance migrating).
    const connection = await databaseMigratedThrough(waiting, 18);
    try {
      await connection.query(
        "INSERT INTO leases (name, owner, expires_at) VALUES ('migrations', 'other:1:abc', NOW(3) + INTERVAL 120 SECOND)",
      );
      const pending = await pendingOf(connection);
      expect(pending).toBeGreaterThan(0);

      const stop = new AbortController();
      const reason = new Error("asked to stop");
      const opening = openDatabase(waiting.url, { poolSize: 2, signal: stop.signal });
      await sleep(SEVERAL_POLLS_MS);
      stop.abort(reason);
      await expect(opening).rejects.toBe(reason);

      // The real process: SIGTERM once it is connected (its handlers are in place before it connects).
      const child = spawnMain({ DATABASE_URL: waiting.url, GRPC_HOST: "127.0.0.1", GRPC_PORT: "0" });
      const run = collect(child);
      for (let connected = 0; connected === 0; await sleep(100)) {
        const [rows] = await connection.query("SELECT COUNT(*) AS n FROM information_schema.processlist WHERE db = ?", [waiting.name]);
        connected = Number((rows as Array<{ n: string }>)[0]?.n) - 1; // this test's own connection is one
      }
      await sleep(SEVERAL_POLLS_MS);
      child.kill("SIGTERM");
      const exit = await run.exited;
      expect(exit.code).toBe(0);
      expect(exit.stdout).toContain("stopped while starting, as asked; the next start goes on from where this one stopped");
      expect(exit.stderr).toBe("");

      expect(await pendingOf(connection)).toBe(pending);
      const [leases] = await connection.query("SELECT owner FROM leases WHERE name = 'migrations'");
      expect(leases).toEqual([{ owner: "other:1:abc" }]);
    } finally {
      await connection.end();
    }
  });
});
