import { API_KEY_PREFIX_LENGTH, apiKeyPrefixOf, generateApiKey, hashApiKey } from "../domain/api-key.js";
import { SCOPES, type Scope } from "../domain/caller.js";
import {
  API_KEY_PREFIX_INDEX,
  findApiKeyByHash,
  insertApiKey,
  listApiKeys,
  revokeApiKey,
  type ApiKeyListing,
} from "../store/api-keys-store.js";
import type { Database } from "../store/database.js";
import type { ProjectRow } from "../store/projects-store.js";
import { isDuplicateOn } from "../store/sql-errors.js";
import { UsageError } from "./projects.js";

export const LABEL_LENGTH_MAX = 128;
/** Prefixes carry 8 random base62 characters; a collision is rare, two in a row are a bug. */
const PREFIX_ATTEMPTS_MAX = 3;

export interface CreatedApiKey {
  readonly id: bigint;
  /** The full key: shown once, never stored. */
  readonly key: string;
  readonly prefix: string;
  readonly scope: Scope;
}

export function checkScope(value: string): Scope {
  const scope = SCOPES.find((s) => s === value);
  if (!scope) throw new UsageError("scope must be write or read");
  return scope;
}

/** Control characters, and the bidirectional controls that make `keys list` print a label reordered. */
const LABEL_REFUSED = /[\p{Cc}\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;

function checkLabel(label: string): string {
  // Characters as the column counts them (code points), not UTF-16 units: 100 emoji fit.
  if ([...label].length > LABEL_LENGTH_MAX || LABEL_REFUSED.test(label)) {
    throw new UsageError(`label must be at most ${LABEL_LENGTH_MAX} characters without control or bidirectional control characters`);
  }
  return label;
}

/** Stores `key` (a given one, e.g. BOOTSTRAP_API_KEY) for the project: its hash and prefix only. */
export async function storeApiKey(
  database: Database,
  project: ProjectRow,
  key: string,
  options: { label: string; scope: Scope; nowMs: number },
): Promise<CreatedApiKey> {
  const prefix = apiKeyPrefixOf(key);
  const id = await insertApiKey(database.db, {
    projectId: project.id,
    keyHash: hashApiKey(key),
    prefix,
    label: checkLabel(options.label),
    scope: options.scope,
    nowMs: options.nowMs,
  });
  return { id, key, prefix, scope: options.scope };
}

/** A fresh key for the project, in its mode. */
export async function createApiKey(
  database: Database,
  project: ProjectRow,
  options: { label: string; scope: Scope; nowMs: number },
): Promise<CreatedApiKey> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await storeApiKey(database, project, generateApiKey(project.mode), options);
    } catch (error) {
      if (!isDuplicateOn(error, [API_KEY_PREFIX_INDEX]) || attempt >= PREFIX_ATTEMPTS_MAX) throw error;
    }
  }
}

/** Revokes a key; revoking it again is not an error (scripts may retry). */
export async function revokeApiKeyByPrefix(database: Database, prefix: string, nowMs: number): Promise<"revoked" | "already_revoked"> {
  const outcome = await revokeApiKey(database.db, prefix, nowMs);
  if (outcome === "not_found") {
    const hint =
      prefix.length === API_KEY_PREFIX_LENGTH
        ? ""
        : ` (a prefix is the key's first ${API_KEY_PREFIX_LENGTH} characters, as keys list shows it)`;
    throw new UsageError(`no key with prefix "${prefix}"${hint}`);
  }
  return outcome;
}

/** Revokes a key given whole, only if this database holds that very key (its prefix may name another). */
export async function revokeWholeApiKey(
  database: Database,
  key: string,
  nowMs: number,
): Promise<{ prefix: string; outcome: "revoked" | "already_revoked" }> {
  const record = await findApiKeyByHash(database.db, hashApiKey(key));
  if (!record) throw new UsageError(`no key is the one given (its prefix ${apiKeyPrefixOf(key)})`);
  return { prefix: record.prefix, outcome: await revokeApiKeyByPrefix(database, record.prefix, nowMs) };
}

export const apiKeysOf = (database: Database, project: ProjectRow): Promise<ApiKeyListing[]> => listApiKeys(database.db, project.id);
