import { createHash, randomBytes } from "node:crypto";

/** A project's mode; its keys start with `vb_<mode>_`. */
export type ProjectMode = "live" | "test";

export const PROJECT_MODES: readonly ProjectMode[] = ["live", "test"];

/** Random base62 characters after `vb_<mode>_`: 40 of them carry about 238 bits. */
export const API_KEY_RANDOM_LENGTH = 40;
/** Accepted lengths of the random part: at least 32 (the floor), at most 96 (any sane key). */
export const API_KEY_RANDOM_LENGTH_MIN = 32;
export const API_KEY_RANDOM_LENGTH_MAX = 96;
/**
 * The display prefix: `vb_test_` or `vb_live_` plus 8 random characters (62^8 ≈ 2·10^14, so
 * prefixes stay unique without retries in practice; a collision is retried at creation).
 */
export const API_KEY_PREFIX_LENGTH = 16;

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const KEY_PATTERN = new RegExp(`^vb_(live|test)_[0-9A-Za-z]{${API_KEY_RANDOM_LENGTH_MIN},${API_KEY_RANDOM_LENGTH_MAX}}$`);

/** `length` base62 characters from crypto.randomBytes, without modulo bias (bytes ≥ 248 are redrawn). */
function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += BASE62[byte % 62];
    }
  }
  return out;
}

/** A fresh key for a project of this mode: shown once, never stored. */
export const generateApiKey = (mode: ProjectMode): string => `vb_${mode}_${randomBase62(API_KEY_RANDOM_LENGTH)}`;

/** The mode a well-formed key names, or null when the text is not a key at all. */
export function apiKeyModeOf(key: string): ProjectMode | null {
  const match = KEY_PATTERN.exec(key);
  return match ? (match[1] as ProjectMode) : null;
}

/** What the database stores instead of the key: SHA-256, hex. */
export const hashApiKey = (key: string): string => createHash("sha256").update(key).digest("hex");

/** What people see of a key (lists, logs, audit). */
export const apiKeyPrefixOf = (key: string): string => key.slice(0, API_KEY_PREFIX_LENGTH);
