import { SQL as DrizzleSQL, type SQLWrapper, StringChunk } from "drizzle-orm";

/**
 * The store's statements and their fragments: a template's strings and the values between them,
 * kept as they came. Fragments nest, a drizzle table gives its name, and inlineStatement
 * (run-transaction.ts) walks a statement once, escaping each value into the text as mysql2 does.
 *
 * Why not drizzle's `sql`: it makes an object per chunk and checks every chunk's class through
 * its prototype chain, and a write builds hundreds of chunks. Under load that was about a
 * twentieth of the server's CPU, plus the garbage. Where drizzle's query builder wants its own
 * SQL, `getSQL()` gives it (drizzle also takes any SQLWrapper inside its own templates).
 */
export class SQL implements SQLWrapper {
  constructor(
    readonly strings: readonly string[],
    readonly values: readonly unknown[],
  ) {}

  /** The same statement as drizzle's SQL (for its query builder): built on demand, slow path only. */
  getSQL(): DrizzleSQL {
    const chunks: unknown[] = [new StringChunk(this.strings[0] ?? "")];
    this.values.forEach((value, i) => {
      chunks.push(value instanceof SQL ? value.getSQL() : value, new StringChunk(this.strings[i + 1] ?? ""));
    });
    return new DrizzleSQL(chunks as DrizzleSQL["queryChunks"]);
  }
}

function template(strings: TemplateStringsArray, ...values: unknown[]): SQL {
  return new SQL(strings, values);
}

/** The parts with the separator between them; the separator is text only (`sql\`, \``). */
function join(parts: readonly SQL[], separator: SQL): SQL {
  if (separator.values.length > 0) throw new Error("sql.join: a separator holds no values");
  const between = separator.strings.join("");
  const strings: string[] = [""];
  for (let i = 1; i < parts.length; i++) strings.push(between);
  if (parts.length > 0) strings.push("");
  return new SQL(strings, parts);
}

/** Text taken as SQL as it is: only for text of our own (names, keywords), never a value. */
function raw(text: string): SQL {
  return new SQL([text], []);
}

export const sql = Object.assign(template, { join, raw });
