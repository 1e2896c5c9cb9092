import { PROJECT_MODES, type ProjectMode } from "../domain/api-key.js";
import type { Database } from "../store/database.js";
import { findProjectByName, insertProject, listProjects, type ProjectRow, setProjectLimits } from "../store/projects-store.js";
import { isDuplicateOn } from "../store/sql-errors.js";

/** Defaults sized for internal traffic: one key may sustain 5,000 calls/s and burst to 10,000. */
export const RATE_PER_SECOND_DEFAULT = 5_000;
export const BURST_DEFAULT = 10_000;
/** Far above what one instance serves; a bigger number is a typo. */
export const RATE_PER_SECOND_MAX = 1_000_000;
export const BURST_MAX = 10_000_000;
export const PROJECT_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** The project first start creates, and the one BOOTSTRAP_API_KEY goes into. */
export const DEFAULT_PROJECT_NAME = "default";

/** A mistake in what an operator asked for; the CLI prints its message and exits 2. */
export class UsageError extends Error {}

export interface ProjectSettings {
  readonly name: string;
  readonly mode: ProjectMode;
  /** Calls per second per key; 0 means unlimited. */
  readonly ratePerSecond: number;
  readonly burst: number;
}

export function checkProjectSettings(s: ProjectSettings): ProjectSettings {
  if (!PROJECT_NAME_PATTERN.test(s.name)) throw new UsageError("project name must be 1-64 characters of [A-Za-z0-9_.-]");
  if (!PROJECT_MODES.includes(s.mode)) throw new UsageError("mode must be live or test");
  if (!Number.isSafeInteger(s.ratePerSecond) || s.ratePerSecond < 0 || s.ratePerSecond > RATE_PER_SECOND_MAX) {
    throw new UsageError(`rate must be an integer from 0 (unlimited) to ${RATE_PER_SECOND_MAX}`);
  }
  if (!Number.isSafeInteger(s.burst) || s.burst < 0 || s.burst > BURST_MAX) {
    throw new UsageError(`burst must be an integer from 0 to ${BURST_MAX}`);
  }
  // The bucket must hold at least one second of refill, or the rate could never be reached.
  if (s.ratePerSecond > 0 && s.burst < s.ratePerSecond) {
    throw new UsageError(`burst (${s.burst}) must be at least the rate (${s.ratePerSecond}/s; --rate sets it)`);
  }
  return s;
}

/** A rate limit as an operator asks for it: either part may be left out. */
export interface RateLimitChange {
  readonly ratePerSecond?: number;
  readonly burst?: number;
}

/**
 * The rate and burst a project gets: those given, else its current ones (a new project's: the
 * defaults). A burst left out is kept while it still holds a second of the rate, else it is twice
 * the rate; a new project given no rate keeps the default burst.
 */
function rateLimitOf(change: RateLimitChange, current: ProjectRow | null): { ratePerSecond: number; burst: number } {
  const ratePerSecond = change.ratePerSecond ?? current?.ratePerSecond ?? RATE_PER_SECOND_DEFAULT;
  if (ratePerSecond === 0 && change.burst !== undefined) {
    // Stored, it would do nothing now and quietly become the burst of a later --rate.
    throw new UsageError(
      current === null
        ? "an unlimited project (--rate 0) takes no --burst: a burst applies only with a rate"
        : `project ${current.name} is unlimited (rate 0): a burst applies only with a rate; give --rate too`,
    );
  }
  const currentBurst = current?.burst ?? (change.ratePerSecond === undefined ? BURST_DEFAULT : 0);
  const burst = change.burst ?? (currentBurst >= ratePerSecond ? currentBurst : Math.min(ratePerSecond * 2, BURST_MAX));
  return { ratePerSecond, burst };
}

/** Creates a project; a rate or burst left out is chosen as `rateLimitOf` says. */
export async function createProject(
  database: Database,
  settings: Pick<ProjectSettings, "name" | "mode"> & RateLimitChange,
  nowMs: number,
): Promise<ProjectRow> {
  const s = checkProjectSettings({ name: settings.name, mode: settings.mode, ...rateLimitOf(settings, null) });
  try {
    const id = await insertProject(database.db, { ...s, nowMs });
    return { id, ...s, createdAtMs: nowMs };
  } catch (error) {
    if (isDuplicateOn(error, ["projects_name_uq"])) throw new UsageError(`project "${s.name}" already exists`);
    throw error;
  }
}

export async function projectNamed(database: Database, name: string): Promise<ProjectRow> {
  const project = await findProjectByName(database.db, name);
  if (!project) throw new UsageError(`no project named "${name}"`);
  return project;
}

export const allProjects = (database: Database): Promise<ProjectRow[]> => listProjects(database.db);

/**
 * Changes a project's rate limit: the parts given, as `rateLimitOf` says, checked as at creation.
 * Instances apply it as their key caches expire (API_KEY_CACHE_TTL_MS).
 */
export async function setProjectRateLimit(database: Database, name: string, change: RateLimitChange): Promise<ProjectRow> {
  const project = await projectNamed(database, name);
  const s = checkProjectSettings({ ...project, ...rateLimitOf(change, project) });
  if (!(await setProjectLimits(database.db, project.id, { ratePerSecond: s.ratePerSecond, burst: s.burst }))) {
    throw new UsageError(`no project named "${name}"`);
  }
  return { ...project, ratePerSecond: s.ratePerSecond, burst: s.burst };
}

/** A project's limit as the CLI prints it. */
export const rateLimitText = (p: Pick<ProjectSettings, "ratePerSecond" | "burst">): string =>
  p.ratePerSecond === 0 ? "unlimited" : `${p.ratePerSecond}/s per key, burst ${p.burst}`;
