import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE_NAME = "velobase-billing";

/**
 * This build's version, from its package.json: the nearest one named velobase-billing above this
 * file (src/ when run from source, dist/src/ in the image).
 */
export const SERVICE_VERSION: string = versionAbove(dirname(fileURLToPath(import.meta.url)));

function versionAbove(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const version = versionIn(join(dir, "package.json"));
    if (version !== null) return version;
    if (dirname(dir) === dir) return "unknown";
  }
}

function versionIn(path: string): string | null {
  try {
    const manifest = JSON.parse(readFileSync(path, "utf8")) as { name?: unknown; version?: unknown };
    return manifest.name === PACKAGE_NAME && typeof manifest.version === "string" ? manifest.version : null;
  } catch {
    return null;
  }
}
