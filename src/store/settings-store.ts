import { randomBytes } from "node:crypto";
import type { Pool, RowDataPacket } from "mysql2/promise";
import { stringOf } from "./row-values.js";

const DEPLOYMENT_ID = "deployment_id";

/**
 * This database's deployment id, made at its first start: `d` and 12 random base32 characters.
 * Every event id starts with it. INSERT IGNORE, then read: instances starting together agree.
 */
export async function ensureDeploymentId(pool: Pool): Promise<string> {
  const fresh = `d${randomBytes(8).readBigUInt64BE().toString(32).padStart(13, "0").slice(0, 12)}`;
  await pool.query("INSERT IGNORE INTO settings (name, value) VALUES (?, ?)", [DEPLOYMENT_ID, fresh]);
  const [rows] = await pool.query<RowDataPacket[]>("SELECT value FROM settings WHERE name = ?", [DEPLOYMENT_ID]);
  return stringOf(rows[0]?.value);
}
