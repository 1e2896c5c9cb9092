import { apiKeyModeOf, apiKeyPrefixOf, hashApiKey } from "../domain/api-key.js";
import type { Scope } from "../domain/caller.js";
import { API_KEY_PREFIX_INDEX, countApiKeys, findApiKeyByHash } from "../store/api-keys-store.js";
import type { Database } from "../store/database.js";
import { type LeaseWait, withLease } from "../store/leases-store.js";
import { isDuplicateOn } from "../store/sql-errors.js";
import { findProjectByName, type ProjectRow, setProjectMode } from "../store/projects-store.js";
import { createApiKey, storeApiKey, type CreatedApiKey } from "./api-keys.js";
import { createProject, DEFAULT_PROJECT_NAME, UsageError } from "./projects.js";

export type BootstrapOutcome =
  /** A key was generated: print it once, where a person sees it. */
  | { readonly kind: "generated"; readonly key: CreatedApiKey }
  /** BOOTSTRAP_API_KEY was stored now. */
  | { readonly kind: "stored"; readonly prefix: string }
  /** Nothing to do: keys exist, or BOOTSTRAP_API_KEY already does (revoked, or not a write key of `default`: said). */
  | { readonly kind: "none"; readonly revokedBootstrapPrefix?: string; readonly notDefaultWriteKey?: { prefix: string; scope: Scope } };

async function defaultProject(database: Database, mode: "live" | "test", nowMs: number): Promise<ProjectRow> {
  const existing = await findProjectByName(database.db, DEFAULT_PROJECT_NAME);
  if (existing) return existing;
  // The default rate and burst.
  return createProject(database, { name: DEFAULT_PROJECT_NAME, mode }, nowMs);
}

/** Stores BOOTSTRAP_API_KEY as a write key of the `default` project, unless it is there already. */
async function storeBootstrapKey(database: Database, bootstrapKey: string, nowMs: number): Promise<BootstrapOutcome> {
  const mode = apiKeyModeOf(bootstrapKey);
  if (mode === null) throw new UsageError("BOOTSTRAP_API_KEY is not a vb_live_/vb_test_ key");
  const existing = await findApiKeyByHash(database.db, hashApiKey(bootstrapKey));
  if (existing) {
    if (existing.revokedAtMs !== null) return { kind: "none", revokedBootstrapPrefix: existing.prefix };
    const inDefault = (await findProjectByName(database.db, DEFAULT_PROJECT_NAME))?.id === existing.projectId;
    return inDefault && existing.scope === "write"
      ? { kind: "none" }
      : { kind: "none", notDefaultWriteKey: { prefix: existing.prefix, scope: existing.scope } };
  }
  let project = await defaultProject(database, mode, nowMs);
  if (project.mode !== mode) {
    // Every database has `default` (test mode) from its first migration. While no key has ever
    // entered it, the first key decides its mode; after that a key of the other mode is refused.
    if ((await countApiKeys(database.db)) > 0) {
      throw new UsageError(`BOOTSTRAP_API_KEY is a ${mode} key but the project "${project.name}" is in ${project.mode} mode`);
    }
    await setProjectMode(database.db, project.id, mode);
    project = { ...project, mode };
  }
  try {
    const stored = await storeApiKey(database, project, bootstrapKey, { label: "bootstrap", scope: "write", nowMs });
    return { kind: "stored", prefix: stored.prefix };
  } catch (error) {
    // Keys are named by their first 16 characters: a chosen key must not share them with another.
    if (!isDuplicateOn(error, [API_KEY_PREFIX_INDEX])) throw error;
    throw new UsageError(
      `BOOTSTRAP_API_KEY's first 16 characters are another key's prefix (${apiKeyPrefixOf(bootstrapKey)}): choose a key that differs in them`,
    );
  }
}

/** Creates the `default` project (mode test) and one write key, when the database has no key at all. */
async function generateFirstKey(database: Database, nowMs: number): Promise<BootstrapOutcome> {
  if ((await countApiKeys(database.db)) > 0) return { kind: "none" };
  const project = await defaultProject(database, "test", nowMs);
  const key = await createApiKey(database, project, { label: "first start", scope: "write", nowMs });
  return { kind: "generated", key };
}

/**
 * Makes sure someone can get in. With `bootstrapKey` (BOOTSTRAP_API_KEY): stores that exact key
 * as a write key of the `default` project when it is missing. Without it: when the database has
 * no key at all (a fresh database, or one from before keys existed), creates the `default`
 * project (mode test) if missing and one write key for it. Instances starting together take
 * turns, so exactly one key is made. `wait.waiting` is told every minute of a wait for another
 * instance's turn (a live holder that keeps it), and `wait.signal` ends that wait.
 */
export function bootstrapApiKey(
  database: Database,
  bootstrapKey: string | null,
  nowMs: number,
  wait: LeaseWait = {},
): Promise<BootstrapOutcome> {
  return withLease(
    database.pool,
    "bootstrap",
    () => (bootstrapKey === null ? generateFirstKey(database, nowMs) : storeBootstrapKey(database, bootstrapKey, nowMs)),
    wait,
  );
}
