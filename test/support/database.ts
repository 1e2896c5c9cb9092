import { randomBytes } from "node:crypto";
import mysql from "mysql2/promise";

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
