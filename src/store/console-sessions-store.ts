import { eq } from "drizzle-orm";
import { sql } from "./sql.js";
import type { Db } from "./database.js";
import { apiKeys, consoleSessions } from "./schema.js";

/** A console sign-in as stored: only the SHA-256 of its id, never the id or the key. */
export interface NewConsoleSession {
  readonly idHash: string;
  readonly projectId: bigint;
  readonly apiKeyId: bigint;
  readonly nowMs: number;
  readonly expiresAtMs: number;
}

/** A stored session with the hash of the key that signed in (authentication checks it again). */
export interface ConsoleSessionRecord {
  readonly projectId: bigint;
  readonly keyHash: string;
  readonly expiresAtMs: number;
}

/** Sessions removed per sign-in once they have ended: the table never grows without bound. */
const EXPIRED_SESSIONS_PER_SWEEP = 100;

export async function insertConsoleSession(db: Db, s: NewConsoleSession): Promise<void> {
  await db.insert(consoleSessions).values({
    idHash: s.idHash,
    projectId: s.projectId,
    apiKeyId: s.apiKeyId,
    createdAt: new Date(s.nowMs),
    expiresAt: new Date(s.expiresAtMs),
  });
}

export async function findConsoleSession(db: Db, idHash: string): Promise<ConsoleSessionRecord | null> {
  const rows = await db
    .select({ projectId: consoleSessions.projectId, keyHash: apiKeys.keyHash, expiresAt: consoleSessions.expiresAt })
    .from(consoleSessions)
    .innerJoin(apiKeys, eq(apiKeys.id, consoleSessions.apiKeyId))
    .where(eq(consoleSessions.idHash, idHash));
  const row = rows[0];
  return row ? { projectId: row.projectId, keyHash: row.keyHash, expiresAtMs: row.expiresAt.getTime() } : null;
}

export async function deleteConsoleSession(db: Db, idHash: string): Promise<void> {
  await db.delete(consoleSessions).where(eq(consoleSessions.idHash, idHash));
}

/** Removes some sessions that have ended (oldest first, a bounded number per call). */
export async function deleteEndedConsoleSessions(db: Db, nowMs: number): Promise<void> {
  await db.execute(
    sql`DELETE FROM ${consoleSessions} WHERE expires_at <= ${new Date(nowMs)} ORDER BY expires_at LIMIT ${EXPIRED_SESSIONS_PER_SWEEP}`,
  );
}
