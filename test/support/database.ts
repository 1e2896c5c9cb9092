import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { drizzle } from "drizzle-orm/mysql2";
import { migrate } from "drizzle-orm/mysql2/migrator";
import mysql from "mysql2/promise";
import { ROOT } from "./spawn.js";

export const SERVER_URL = process.env.TEST_DATABASE_SERVER_URL ?? "mysql://root@127.0.0.1:3306";

/** A unique database per test file, dropped by the returned function. */
export function uniqueDatabaseUrl(prefix = "vb_test"): { url: string; name: string; drop: () => Promise<void> } {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
  return {
    url: `${SERVER_URL}/${name}`,
    name,
    drop: async () => {
      const connection = await mysql.createConnection(SERVER_URL);
      try {
        await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await connection.end();
      }
    },
  };
}

/**
 * Creates `db` as a build whose migrations ended at journal index `lastIdx` left it: this build's
 * migrations are copied (`edit` may change the copy first, as a migration's text was when it was
 * first applied), the journal is cut there, and drizzle's migrator applies them. Returns a
 * connection to seed its rows with (several statements a query); the caller ends it.
 */
export async function databaseMigratedThrough(
  db: { url: string; name: string },
  lastIdx: number,
  edit: (dir: string) => void = () => {},
): Promise<mysql.Connection> {
  const dir = mkdtempSync(join(tmpdir(), "vb-migrations-"));
  try {
    cpSync(`${ROOT}/src/store/migrations`, dir, { recursive: true });
    const journalPath = join(dir, "meta/_journal.json");
    const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: Array<{ idx: number }> };
    journal.entries = journal.entries.filter((e) => e.idx <= lastIdx);
    writeFileSync(journalPath, JSON.stringify(journal));
    edit(dir);
    const server = await mysql.createConnection(SERVER_URL);
    try {
      await server.query(`CREATE DATABASE \`${db.name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    } finally {
      await server.end();
    }
    const connection = await mysql.createConnection({ uri: db.url, multipleStatements: true });
    try {
      await migrate(drizzle(connection), { migrationsFolder: dir });
    } catch (error) {
      await connection.end();
      throw error;
    }
    return connection;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
