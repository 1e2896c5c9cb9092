import { closedValueOf } from "./row-values.js";
import { and, asc, count, eq, isNull, lt, or } from "drizzle-orm";
import type { ProjectMode } from "../domain/api-key.js";
import { SCOPES, type Scope } from "../domain/caller.js";
import type { Db } from "./database.js";
import { parseMode } from "./projects-store.js";
import { apiKeys, projects } from "./schema.js";

export interface NewApiKey {
  readonly projectId: bigint;
  readonly keyHash: string;
  readonly prefix: string;
  readonly label: string;
  readonly scope: Scope;
  readonly nowMs: number;
}

/** A key as authentication needs it, with its project's mode and rate limit. */
export interface ApiKeyRecord {
  readonly id: bigint;
  readonly projectId: bigint;
  readonly prefix: string;
  readonly scope: Scope;
  readonly revokedAtMs: number | null;
  readonly mode: ProjectMode;
  readonly ratePerSecond: number;
  readonly burst: number;
}

/** A key as operators list it. */
export interface ApiKeyListing {
  readonly prefix: string;
  readonly label: string;
  readonly scope: Scope;
  readonly createdAtMs: number;
  readonly lastUsedAtMs: number | null;
  readonly revokedAtMs: number | null;
}

export const API_KEY_PREFIX_INDEX = "api_keys_prefix_uq";

export const parseScope = (value: string): Scope => closedValueOf(value, SCOPES, "api_keys.scope");

/** Inserts a key; a taken hash or prefix fails on its unique index (see isDuplicateOn). */
export async function insertApiKey(db: Db, k: NewApiKey): Promise<bigint> {
  const [header] = await db.insert(apiKeys).values({
    projectId: k.projectId,
    keyHash: k.keyHash,
    prefix: k.prefix,
    label: k.label,
    scope: k.scope,
    createdAt: new Date(k.nowMs),
  });
  return BigInt(header.insertId);
}

export async function findApiKeyByHash(db: Db, keyHash: string): Promise<ApiKeyRecord | null> {
  const rows = await db
    .select({
      id: apiKeys.id,
      projectId: apiKeys.projectId,
      prefix: apiKeys.prefix,
      scope: apiKeys.scope,
      revokedAt: apiKeys.revokedAt,
      mode: projects.mode,
      ratePerSecond: projects.ratePerSecond,
      burst: projects.burst,
    })
    .from(apiKeys)
    .innerJoin(projects, eq(projects.id, apiKeys.projectId))
    .where(eq(apiKeys.keyHash, keyHash));
  const r = rows[0];
  if (!r) return null;
  return {
    id: r.id,
    projectId: r.projectId,
    prefix: r.prefix,
    scope: parseScope(r.scope),
    revokedAtMs: r.revokedAt?.getTime() ?? null,
    mode: parseMode(r.mode),
    ratePerSecond: r.ratePerSecond,
    burst: r.burst,
  };
}

export async function listApiKeys(db: Db, projectId: bigint): Promise<ApiKeyListing[]> {
  const rows = await db.select().from(apiKeys).where(eq(apiKeys.projectId, projectId)).orderBy(asc(apiKeys.id));
  return rows.map((r) => ({
    prefix: r.prefix,
    label: r.label,
    scope: parseScope(r.scope),
    createdAtMs: r.createdAt.getTime(),
    lastUsedAtMs: r.lastUsedAt?.getTime() ?? null,
    revokedAtMs: r.revokedAt?.getTime() ?? null,
  }));
}

/** Revokes the key with this prefix; returns whether a live key was revoked now. */
export async function revokeApiKey(db: Db, prefix: string, nowMs: number): Promise<"revoked" | "already_revoked" | "not_found"> {
  const [header] = await db
    .update(apiKeys)
    .set({ revokedAt: new Date(nowMs) })
    .where(and(eq(apiKeys.prefix, prefix), isNull(apiKeys.revokedAt)));
  if (header.affectedRows === 1) return "revoked";
  const rows = await db.select({ id: apiKeys.id }).from(apiKeys).where(eq(apiKeys.prefix, prefix));
  return rows.length === 0 ? "not_found" : "already_revoked";
}

/** Moves last_used_at forward (never back, whichever instance writes last). */
export async function touchApiKey(db: Db, id: bigint, nowMs: number): Promise<void> {
  const now = new Date(nowMs);
  await db
    .update(apiKeys)
    .set({ lastUsedAt: now })
    .where(and(eq(apiKeys.id, id), or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, now))));
}

export async function countApiKeys(db: Db): Promise<number> {
  const [row] = await db.select({ n: count() }).from(apiKeys);
  return row?.n ?? 0;
}
