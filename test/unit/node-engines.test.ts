import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// `npm ci` on the Node the README names warns EBADENGINE when an installed package requires a
// newer one (cookie@2.0.2, pulled in by fastify's light-my-request 6.8, required Node 22).
// Node 20.19 is the oldest 20.x every installed package accepts (vite, which vitest runs on,
// needs it).
const NODE = [20, 19, 0] as const;

const ROOT = join(import.meta.dirname, "../../node_modules");

/** Every installed package (nested ones included) with the Node range its package.json names. */
function engines(dir: string, found: Array<{ name: string; range: string }> = []): Array<{ name: string; range: string }> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith(".")) continue;
    const path = join(dir, entry.name);
    if (entry.name.startsWith("@")) {
      engines(path, found);
      continue;
    }
    try {
      const manifest = JSON.parse(readFileSync(join(path, "package.json"), "utf8")) as {
        name?: string;
        version?: string;
        engines?: { node?: string };
      };
      if (manifest.engines?.node) found.push({ name: `${manifest.name}@${manifest.version}`, range: manifest.engines.node });
    } catch {
      // not a package directory
    }
    try {
      engines(join(path, "node_modules"), found);
    } catch {
      // no nested packages
    }
  }
  return found;
}

const parts = (version: string): number[] => version.split(".").map((p) => (p === "x" || p === "*" || p === "" ? 0 : Number(p)));
function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < 3; i += 1) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
  return 0;
}

/** The npm range forms these packages use: >=, >, <, <=, ^, x-ranges, ||. */
function accepts(range: string, version: readonly number[]): boolean {
  return range.split("||").some((alternative) =>
    alternative
      .trim()
      .replace(/(>=|<=|>|<|\^|~)\s+/g, "$1")
      .split(/\s+/)
      .every((comparator) => {
        const match = /^(>=|<=|>|<|\^|~)?v?([\d.x*]+)$/.exec(comparator);
        if (!match) throw new Error(`unknown range form: ${comparator}`);
        const [, operator = "", text = ""] = match;
        const bound = parts(text);
        const exact = text.split(".").filter((p) => /^\d+$/.test(p)).length;
        switch (operator) {
          case ">=":
            return compare(version, bound) >= 0;
          case ">":
            return compare(version, bound) > 0;
          case "<":
            return compare(version, bound) < 0;
          case "<=":
            return compare(version, bound) <= 0;
          case "^":
            return version[0] === bound[0] && compare(version, bound) >= 0;
          case "~":
            return version[0] === bound[0] && (exact < 2 || version[1] === bound[1]) && compare(version, bound) >= 0;
          default:
            return bound.slice(0, exact).every((p, i) => version[i] === p);
        }
      }),
  );
}

describe("installed packages", () => {
  it("the range checker reads npm's forms", () => {
    expect(
      [">=22", "^20.19.0 || >=22.12.0", "^20.12||^22||>=24", "6.* || 8.* || >= 10.*", ">= 0.4", "^16 || ^18"].map((r) => accepts(r, NODE)),
    ).toEqual([false, true, true, true, true, false]);
  });

  it(`every one supports Node ${NODE.join(".")} (npm ci warns no EBADENGINE)`, () => {
    const found = engines(ROOT);
    expect(found.length).toBeGreaterThan(50);
    expect(found.filter(({ range }) => !accepts(range, NODE))).toEqual([]);
  });
});
