import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql, { type RowDataPacket } from "mysql2/promise";
import { afterEach, describe, expect, it } from "vitest";
import { redactUrl } from "../../src/config.js";
import { DatabaseNotReadyError, openDatabase } from "../../src/store/database.js";
import { uniqueDatabaseUrl } from "../support/database.js";
import { collect, ROOT, spawnMain } from "../support/spawn.js";

// The migrations as a copy of the service's own folder whose journal the test edits: a database
// migrated part way, a run stopped in the middle of a migration, a migration numbered before the
// newest applied one.

interface JournalEntry {
  idx: number;
  version: string;
  when: number;
  tag: string;
  breakpoints: boolean;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function migrationsCopy(): { dir: string; entries: JournalEntry[]; writeJournal(entries: JournalEntry[]): void } {
  const dir = mkdtempSync(join(tmpdir(), "vb-migrations-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(`${ROOT}/src/store/migrations`, dir, { recursive: true });
  const journalPath = join(dir, "meta/_journal.json");
  const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: JournalEntry[] };
  return {
    dir,
    entries: journal.entries,
    writeJournal: (entries) => writeFileSync(journalPath, JSON.stringify({ ...journal, entries })),
  };
}

async function open(url: string, folder: string, warnings: string[] = []) {
  const database = await openDatabase(url, {
    poolSize: 2,
    migrationsFolder: folder,
    log: { warn: (_facts, message) => warnings.push(message) },
  });
  // Closed by the test or here, whichever comes first (a second close is refused, and ignored).
  cleanups.push(() => database.close().catch(() => undefined));
  return database;
}

function freshDatabase() {
  const db = uniqueDatabaseUrl("vb_migrations");
  cleanups.push(() => db.drop());
  return db;
}

/** A database migrated through the service's migrations, and a copy of them with one more: `tag`, holding `statement`. */
async function migratedThenOneMore(tag: string, statement: string) {
  const copy = migrationsCopy();
  const db = freshDatabase();
  await (await open(db.url, copy.dir)).close();
  const last = copy.entries.at(-1) as JournalEntry;
  writeFileSync(join(copy.dir, `${tag}.sql`), statement);
  copy.writeJournal([...copy.entries, { ...last, idx: last.idx + 1, when: last.when + 1, tag }]);
  return { copy, db };
}

/** A session that ran `statement` in a transaction it keeps open (ended first at cleanup: the database's drop would wait for it). */
async function transactionOpen(url: string, statement: string): Promise<mysql.Connection> {
  const session = await mysql.createConnection(url);
  cleanups.unshift(() => session.end());
  await session.query("BEGIN");
  await session.query(statement);
  return session;
}

/** Opening the database is refused with `message`, by the server's open (migrating) and by verify's (read-only). */
async function expectRefusedEitherWay(url: string, folder: string, message: string): Promise<void> {
  for (const migrate of [true, "read-only"] as const) {
    const refused = await openDatabase(url, { poolSize: 2, migrationsFolder: folder, migrate }).then(
      async (database) => {
        await database.close();
        return null;
      },
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(DatabaseNotReadyError);
    expect((refused as Error).message).toBe(message);
  }
}

const statementsOf = (dir: string, tag: string) =>
  readFileSync(join(dir, `${tag}.sql`), "utf8")
    .split("--> statement-breakpoint")
    .filter((s) => s.trim() !== "");

describe("a migration run stopped part way", () => {
  it("goes on from the statement after the last one recorded; the one that committed unrecorded is taken as done", async () => {
    const copy = migrationsCopy();
    const closedChecks = copy.entries.find((e) => e.tag === "0017_closed_value_checks") as JournalEntry;
    const db = freshDatabase();
    copy.writeJournal(copy.entries.filter((e) => e.idx < closedChecks.idx));
    const before = await open(db.url, copy.dir);
    // The run that stopped: 0017's first two statements committed, the first recorded done, the
    // second marked started and never recorded.
    const [first, second] = statementsOf(copy.dir, closedChecks.tag);
    await before.pool.query(first as string);
    await before.pool.query(second as string);
    await before.pool.query("INSERT INTO __migration_progress (created_at, statements_done, statement_started) VALUES (?, 1, 1)", [
      closedChecks.when,
    ]);
    await before.close();

    copy.writeJournal(copy.entries);
    const warnings: string[] = [];
    const after = await open(db.url, copy.dir, warnings);
    expect(warnings).toEqual(["a migration statement was applied already by a run that stopped part way; going on from the next"]);
    const [checks] = await after.pool.query<RowDataPacket[]>(
      `SELECT CONSTRAINT_NAME AS name FROM information_schema.TABLE_CONSTRAINTS
       WHERE CONSTRAINT_SCHEMA = ? AND CONSTRAINT_NAME IN ('events_type_known', 'ledger_business_type_known', 'transactions_business_type_known')
       ORDER BY CONSTRAINT_NAME`,
      [db.name],
    );
    expect(checks.map((c) => c.name)).toEqual(["events_type_known", "ledger_business_type_known", "transactions_business_type_known"]);
    const [applied] = await after.pool.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM __drizzle_migrations");
    const [progress] = await after.pool.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM __migration_progress");
    expect([Number(applied[0]?.n), Number(progress[0]?.n)]).toEqual([copy.entries.length, 0]);
  });

  it("takes a copy (INSERT … SELECT) a killed run left committed for done: its duplicates mean it ran", async () => {
    const copy = migrationsCopy();
    const db = freshDatabase();
    const last = copy.entries.at(-1) as JournalEntry;
    const copying: JournalEntry = { ...last, idx: last.idx + 1, when: last.when + 1, tag: "9999_test_copy" };
    writeFileSync(
      join(copy.dir, `${copying.tag}.sql`),
      "CREATE TABLE copy_probe (k INT PRIMARY KEY);--> statement-breakpoint\nINSERT INTO copy_probe (k) SELECT id FROM projects;",
    );
    copy.writeJournal(copy.entries);
    const before = await open(db.url, copy.dir);
    // The run that was killed: the table made and recorded, the copy committed after the kill.
    await before.pool.query("CREATE TABLE copy_probe (k INT PRIMARY KEY)");
    await before.pool.query("INSERT INTO copy_probe (k) SELECT id FROM projects");
    await before.pool.query("INSERT INTO __migration_progress (created_at, statements_done, statement_started) VALUES (?, 1, 1)", [
      copying.when,
    ]);
    await before.close();
    copy.writeJournal([...copy.entries, copying]);
    const warnings: string[] = [];
    const after = await open(db.url, copy.dir, warnings);
    expect(warnings).toEqual(["a migration statement was applied already by a run that stopped part way; going on from the next"]);
    const [copied] = await after.pool.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM copy_probe");
    const [projects] = await after.pool.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM projects");
    expect(Number(copied[0]?.n)).toBe(Number(projects[0]?.n));
  });

  it("takes nothing for done that no run started unrecorded: a fresh migration's statement that finds its object there fails", async () => {
    const copy = migrationsCopy();
    const db = freshDatabase();
    const last = copy.entries.at(-1) as JournalEntry;
    const clash: JournalEntry = { ...last, idx: last.idx + 1, when: last.when + 1, tag: "9999_test_clash" };
    writeFileSync(join(copy.dir, `${clash.tag}.sql`), "CREATE TABLE settings (name VARCHAR(8) PRIMARY KEY);");
    copy.writeJournal([...copy.entries, clash]);
    for (let run = 1; run <= 2; run++) {
      const failed = await open(db.url, copy.dir).then(
        () => null,
        (error: unknown) => error,
      );
      expect((failed as Error).message).toBe(
        "migration 9999_test_clash failed at statement 1 of 1 (1050: Table 'settings' already exists); " +
          'the 0 before it are applied and recorded, and the next run goes on from it: see README, "Upgrading"',
      );
    }
  });

  it("runs a statement as long as it takes, not within the pool's statement timeout", async () => {
    const copy = migrationsCopy();
    const db = freshDatabase();
    const last = copy.entries.at(-1) as JournalEntry;
    const slow: JournalEntry = { ...last, idx: last.idx + 1, when: last.when + 1, tag: "9999_test_slow" };
    writeFileSync(join(copy.dir, `${slow.tag}.sql`), "DO SLEEP(12);");
    copy.writeJournal([...copy.entries, slow]);
    // A lock wait of 1 s makes the pool's statement timeout 11 s.
    const database = await openDatabase(db.url, { poolSize: 2, migrationsFolder: copy.dir, lockWaitTimeoutS: 1 });
    cleanups.push(() => database.close().catch(() => undefined));
    expect(database.statementTimeoutMs).toBe(11_000);
    const [applied] = await database.pool.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM __drizzle_migrations");
    expect(Number(applied[0]?.n)).toBe(copy.entries.length + 1);
  });

  it("says while a statement waits for a table lock, naming the open transactions, and waits on until it gets it or the start is stopped", async () => {
    const { copy, db } = await migratedThenOneMore("9999_test_alter", "ALTER TABLE `settings` ADD `test_extra` int;");
    // An operator's session with a transaction open on the table: the ALTER waits for its metadata lock.
    const blocker = await transactionOpen(db.url, "SELECT COUNT(*) FROM settings");
    const [[{ id: blockerId }]] = (await blocker.query("SELECT CONNECTION_ID() AS id")) as unknown as [[{ id: number }]];
    const said: {
      facts: { migration?: string; statement?: number; waitedS?: number; openTransactions?: { id: number }[] };
      message: string;
    }[] = [];
    const opening = (signal?: AbortSignal) =>
      openDatabase(db.url, {
        poolSize: 2,
        migrationsFolder: copy.dir,
        migrationLockWaitS: 1,
        signal,
        log: { warn: (facts, message) => said.push({ facts, message }) },
      });
    const column = async () => {
      const [rows] = await blocker.query(
        "SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND COLUMN_NAME = 'test_extra'",
        [db.name],
      );
      return Number((rows as Array<{ n: string }>)[0]?.n);
    };
    const untilSaid = async (times: number) => {
      while (said.length < times) await new Promise((r) => setTimeout(r, 100));
    };

    const stop = new AbortController();
    const stopped = opening(stop.signal);
    await untilSaid(2);
    const reason = new Error("asked to stop");
    stop.abort(reason);
    // The stop interrupts the wait (KILL QUERY of the waiting statement), which did nothing.
    await expect(stopped).rejects.toBe(reason);
    expect(said[0]).toMatchObject({
      message: "a migration statement waits for a table lock",
      facts: { migration: "9999_test_alter", statement: 1, waitedS: 1 },
    });
    // Other tests' sessions may have transactions open on the server: the blocker is among the oldest, listed first as of this database.
    expect(said[0]?.facts.openTransactions?.[0]).toMatchObject({ id: blockerId });
    expect(said[1]?.facts.waitedS).toBe(2);
    expect(await column()).toBe(0);
    const [interrupted] = await blocker.query(
      "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND STATE LIKE '%lock%'",
      [db.name],
    );
    expect(Number((interrupted as Array<{ n: string }>)[0]?.n)).toBe(0);

    said.length = 0;
    const waiting = opening();
    await untilSaid(1);
    await blocker.query("COMMIT");
    const database = await waiting;
    cleanups.push(() => database.close().catch(() => undefined));
    expect(await column()).toBe(1);
    const [applied] = await database.pool.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM __drizzle_migrations");
    expect(Number(applied[0]?.n)).toBe(copy.entries.length + 1);
  });

  it("tries a statement that timed out on a row lock again, saying so, until it gets the lock", async () => {
    const { copy, db } = await migratedThenOneMore("9999_test_update", "UPDATE `projects` SET `burst` = `burst` + 1 WHERE `id` = 1;");
    const blocker = await transactionOpen(db.url, "SELECT burst FROM projects WHERE id = 1 FOR UPDATE");
    const [[{ burst }]] = (await blocker.query("SELECT burst FROM projects WHERE id = 1")) as unknown as [[{ burst: number }]];
    const said: { facts: { tries?: number }; message: string }[] = [];
    const waiting = openDatabase(db.url, {
      poolSize: 2,
      migrationsFolder: copy.dir,
      migrationLockWaitS: 1,
      log: { warn: (facts, message) => said.push({ facts, message }) },
    });
    while (said.length < 2) await new Promise((r) => setTimeout(r, 100));
    await blocker.query("COMMIT");
    const database = await waiting;
    cleanups.push(() => database.close().catch(() => undefined));
    expect(said.slice(0, 2)).toMatchObject([
      { message: "a migration statement waits for a row lock; trying again", facts: { tries: 1 } },
      { message: "a migration statement waits for a row lock; trying again", facts: { tries: 2 } },
    ]);
    // Applied once: each timed-out try did nothing.
    const [after] = await database.pool.query<RowDataPacket[]>("SELECT burst FROM projects WHERE id = 1");
    expect(Number(after[0]?.burst)).toBe(Number(burst) + 1);
  });

  it("names the migration and statement that failed, fails there again until mended, then goes on from it", async () => {
    const copy = migrationsCopy();
    const db = freshDatabase();
    const last = copy.entries.at(-1) as JournalEntry;
    const broken: JournalEntry = { ...last, idx: last.idx + 1, when: last.when + 1, tag: "9999_test_broken" };
    writeFileSync(
      join(copy.dir, `${broken.tag}.sql`),
      "CREATE TABLE migration_probe (id INT PRIMARY KEY);--> statement-breakpoint\nALTER TABLE no_such_table ADD x INT;",
    );
    copy.writeJournal([...copy.entries, broken]);
    const failed = await open(db.url, copy.dir).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(DatabaseNotReadyError);
    expect((failed as Error).message).toBe(
      `migration 9999_test_broken failed at statement 2 of 2 (1146: Table '${db.name}.no_such_table' doesn't exist); ` +
        `the 1 before it are applied and recorded, and the next run goes on from it: see README, "Upgrading"`,
    );
    // A restart (a crash loop) meets the same failure: nothing is taken for done.
    const again = await open(db.url, copy.dir).then(
      () => null,
      (error: unknown) => error,
    );
    expect((again as Error).message).toBe((failed as Error).message);
    writeFileSync(
      join(copy.dir, `${broken.tag}.sql`),
      "CREATE TABLE migration_probe (id INT PRIMARY KEY);--> statement-breakpoint\nALTER TABLE migration_probe ADD x INT;",
    );
    const warnings: string[] = [];
    const mended = await open(db.url, copy.dir, warnings);
    const [columns] = await mended.pool.query<RowDataPacket[]>(
      "SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'migration_probe' ORDER BY ORDINAL_POSITION",
      [db.name],
    );
    expect([columns.map((c) => c.name), warnings]).toEqual([["id", "x"], []]);
  });
});

describe("a migration numbered before the newest applied one", () => {
  it("is refused by name, by the server and by verify's read-only open, never skipped", async () => {
    const copy = migrationsCopy();
    const db = freshDatabase();
    await (await open(db.url, copy.dir)).close();
    const [first, second] = copy.entries;
    const late: JournalEntry = {
      ...(first as JournalEntry),
      idx: 99,
      when: Math.floor(((first?.when ?? 0) + (second?.when ?? 0)) / 2),
      tag: "0000b_late",
    };
    writeFileSync(join(copy.dir, `${late.tag}.sql`), "CREATE TABLE late_probe (id INT PRIMARY KEY);");
    copy.writeJournal([...copy.entries, late].sort((a, b) => a.when - b.when));
    const message = `database ${db.name} lacks migration 0000b_late, though newer ones are applied (it was made by a build whose migrations were numbered otherwise): see README, "Upgrading"`;
    await expectRefusedEitherWay(db.url, copy.dir, message);
  });
});

describe("a database whose migrations are recorded but whose tables are not all there (a restore cut short)", () => {
  it("is refused, naming them, by the server's open and by verify's", async () => {
    const copy = migrationsCopy();
    const db = freshDatabase();
    const database = await open(db.url, copy.dir);
    await database.pool.query("DROP TABLE settings");
    await database.pool.query("DROP TABLE projects");
    await database.close();
    await expectRefusedEitherWay(
      db.url,
      copy.dir,
      `database ${db.name} lacks table(s) projects, settings, though its migrations are recorded (a restore that did not finish?)`,
    );
    // The server says it in one line and exits 1 (before, a stack trace on the first query).
    const copyOfOwn = freshDatabase();
    const own = await openDatabase(copyOfOwn.url, { poolSize: 2 });
    await own.pool.query("DROP TABLE projects");
    await own.close();
    const exit = await collect(spawnMain({ DATABASE_URL: copyOfOwn.url, GRPC_PORT: "0", HTTP_PORT: "0", SWEEP_INTERVAL_MS: "0" })).exited;
    expect({ code: exit.code, stderr: exit.stderr }).toEqual({
      code: 1,
      stderr: `velobase-billing: database ${copyOfOwn.name} lacks table(s) projects, though its migrations are recorded (a restore that did not finish?) (${redactUrl(copyOfOwn.url)})\n`,
    });
  });
});
