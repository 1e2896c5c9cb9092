import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CONFIG_NAMES, type Config, loadConfig } from "../../src/config.js";

// README's configuration table is what operators read: every setting is in it, with the default
// and the range the service enforces at start. This keeps the table and src/config.ts together.

interface SettingRow {
  readonly names: readonly string[];
  /** The default column: a value in backticks, or "unset…". */
  readonly defaultText: string;
  readonly range: readonly [number, number] | null;
}

function settingRows(): SettingRow[] {
  const readme = readFileSync(join(import.meta.dirname, "../../README.md"), "utf8");
  const section = readme.split("\n## Configuration\n")[1]?.split("\n## ")[0] ?? "";
  return section
    .split("\n")
    .filter((line) => line.startsWith("| `"))
    .map((line) => {
      const [nameCell = "", defaultCell = ""] = line.split(" | ");
      const names = [...nameCell.matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1] as string);
      const range = /\((\d+)–(\d+)\)/.exec(defaultCell);
      return {
        names,
        defaultText: defaultCell.replace(/\s*\(\d+–\d+\)/, "").trim(),
        range: range ? [Number(range[1]), Number(range[2])] : null,
      };
    });
}

const ROWS = settingRows();
const rowOf = (name: string) => ROWS.find((row) => row.names.includes(name));
/** Whether the setting reads as a number (a port, a size, a time): some value of it parses to one. */
const isNumeric = (name: string) =>
  [7, 1_000, 100_000].some(
    (value) => accepts(name, value) && typeof (loadConfig({ [name]: String(value) }) as Record<string, unknown>)[name] === "number",
  );
const accepts = (name: string, value: number) => {
  try {
    loadConfig({ [name]: String(value) });
    return true;
  } catch {
    return false;
  }
};

describe("README's configuration table", () => {
  it("documents every setting, and only settings", () => {
    const documented = ROWS.flatMap((row) => row.names).filter((name) => !name.startsWith("OTEL_"));
    expect([...documented].sort()).toEqual([...CONFIG_NAMES].sort());
  });

  it("gives each setting's default", () => {
    const defaults: Partial<Record<string, unknown>> = loadConfig({}) satisfies Config;
    const wrong = CONFIG_NAMES.filter((name) => {
      const text = rowOf(name)?.defaultText ?? "";
      const value = defaults[name];
      if (value === undefined) return !text.startsWith("unset");
      return text !== `\`${String(value)}\``;
    });
    expect(wrong).toEqual([]);
  });

  it("gives the range of every whole-number setting, as the start enforces it", () => {
    const wrong = ROWS.flatMap((row) => {
      const [name] = row.names;
      if (!row.range || name === undefined) return [];
      const [min, max] = row.range;
      const enforced = accepts(name, min) && accepts(name, max) && !accepts(name, max + 1) && (min === 0 || !accepts(name, min - 1));
      return enforced ? [] : [name];
    });
    expect(wrong).toEqual([]);
    // Every setting that takes a number says its range.
    const unranged = CONFIG_NAMES.filter((name) => !rowOf(name)?.range && isNumeric(name));
    expect(unranged).toEqual([]);
  });
});
