import { closedValueOf } from "./row-values.js";
import { asc, eq } from "drizzle-orm";
import { PROJECT_MODES, type ProjectMode } from "../domain/api-key.js";
import type { Db } from "./database.js";
import { projects } from "./schema.js";

export interface ProjectRow {
  readonly id: bigint;
  readonly name: string;
  readonly mode: ProjectMode;
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly createdAtMs: number;
}

export interface NewProject {
  readonly name: string;
  readonly mode: ProjectMode;
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly nowMs: number;
}

/** A mode read back from the database, checked against the closed set. */
export const parseMode = (value: string): ProjectMode => closedValueOf(value, PROJECT_MODES, "projects.mode");

const toRow = (r: typeof projects.$inferSelect): ProjectRow => ({
  id: r.id,
  name: r.name,
  mode: parseMode(r.mode),
  ratePerSecond: r.ratePerSecond,
  burst: r.burst,
  createdAtMs: r.createdAt.getTime(),
});

/** Inserts a project; a taken name fails on projects_name_uq (see isDuplicateOn). */
export async function insertProject(db: Db, p: NewProject): Promise<bigint> {
  const [header] = await db.insert(projects).values({
    name: p.name,
    mode: p.mode,
    ratePerSecond: p.ratePerSecond,
    burst: p.burst,
    createdAt: new Date(p.nowMs),
  });
  return BigInt(header.insertId);
}

export async function findProjectByName(db: Db, name: string): Promise<ProjectRow | null> {
  const rows = await db.select().from(projects).where(eq(projects.name, name));
  return rows[0] ? toRow(rows[0]) : null;
}

export async function listProjects(db: Db): Promise<ProjectRow[]> {
  const rows = await db.select().from(projects).orderBy(asc(projects.id));
  return rows.map(toRow);
}

/** Sets a project's mode (bootstrap, on a database no key has entered yet). */
export async function setProjectMode(db: Db, projectId: bigint, mode: ProjectMode): Promise<void> {
  await db.update(projects).set({ mode }).where(eq(projects.id, projectId));
}

/** Sets a project's rate limit; false when no project has the id. */
export async function setProjectLimits(db: Db, projectId: bigint, limits: { ratePerSecond: number; burst: number }): Promise<boolean> {
  const [result] = await db.update(projects).set(limits).where(eq(projects.id, projectId));
  return result.affectedRows === 1;
}
