import { Command, CommanderError, InvalidArgumentError } from "commander";
import { verifyLedger } from "./operations/verify.js";
import { tailEvents } from "./operations/events/tail-events.js";
import { parseId } from "./domain/validation.js";
import { BillingError } from "./errors/billing-error.js";
import { ConfigError, loadConfig, redactUrl } from "./config.js";
import { SERVICE_VERSION } from "./version.js";
import { API_KEY_PREFIX_LENGTH, apiKeyModeOf, PROJECT_MODES, type ProjectMode } from "./domain/api-key.js";
import { DatabaseNotReadyError, DatabaseUnreachableError, openDatabase, type Database } from "./store/database.js";
import { apiKeysOf, checkScope, createApiKey, revokeApiKeyByPrefix, revokeWholeApiKey } from "./tenancy/api-keys.js";
import { API_KEY_CACHE_TTL_MS_DEFAULT } from "./tenancy/authenticator.js";
import {
  allProjects,
  BURST_DEFAULT,
  createProject,
  projectNamed,
  RATE_PER_SECOND_DEFAULT,
  type RateLimitChange,
  rateLimitText,
  setProjectRateLimit,
  UsageError,
} from "./tenancy/projects.js";

/**
 * Operators' commands (commander): `migrate`, `verify`, `projects`, `keys` and `events`. Each
 * creates and migrates the database first, except `verify`, which only reads.
 */

async function withDatabase(run: (database: Database) => Promise<number>, options: { readOnly?: boolean } = {}): Promise<never> {
  let url = "";
  try {
    url = loadConfig().DATABASE_URL;
    const database = await openDatabase(url, { poolSize: 2, migrate: options.readOnly ? "read-only" : true });
    try {
      process.exit(await run(database));
    } finally {
      await database.close();
    }
  } catch (error) {
    const failure = failureOf(error, url);
    if (failure === null) throw error;
    process.stderr.write(`velobase-billing: ${failure.line}\n`);
    process.exit(failure.code);
  }
}

/** An expected failure's one line and exit code (2: the operator's input, 1: the database); null for a bug. */
function failureOf(error: unknown, url: string): { line: string; code: number } | null {
  if (error instanceof ConfigError || error instanceof UsageError) return { line: error.message, code: 2 };
  if (error instanceof DatabaseNotReadyError) return { line: `${error.message} (${redactUrl(url)})`, code: 1 };
  if (error instanceof DatabaseUnreachableError)
    return { line: `cannot reach the database at ${redactUrl(url)}: ${error.message}`, code: 1 };
  // A refusal the API would answer (a malformed or pruned --cursor): its words and code, one line.
  if (error instanceof BillingError) return { line: `${error.message} (${error.code})`, code: error.spec.type === "bad_request" ? 2 : 1 };
  return null;
}

// Usage mistakes (an unknown command or option, a missing, extra or bad argument) exit 2, as the
// README says, not commander's 1: exitOverride makes commander throw them to parseAsync's caller.
// Every command below inherits it, and the refusal of extra arguments (commander 12 drops them:
// `keys revoke A B` revoked A alone and said nothing of B).
const program = new Command("velobase-billing")
  .description("velobase-billing operator commands")
  .version(SERVICE_VERSION, "-V, --version", "print this build's version")
  .exitOverride()
  .allowExcessArguments(false);

program
  .command("migrate")
  .description("create the database if missing and apply pending migrations")
  .action(() =>
    withDatabase(async (database) => {
      process.stdout.write(`migrations applied to ${database.name}\n`);
      return 0;
    }),
  );

program
  .command("verify")
  .description(
    "recompute every account from the ledger, check transactions, outcomes and the event feed against it, and every slot pool " +
      "from its events; reads only (a missing or unmigrated database is refused); exit 1 when any difference exists",
  )
  .action(() =>
    withDatabase(
      async (database) => {
        const report = await verifyLedger(database.db);
        for (const problem of report.problems) process.stdout.write(`${problem}\n`);
        process.stdout.write(
          `checked ${report.accounts} accounts, ${report.transactions} transactions, ${report.ledgerEntries} ledger entries, ` +
            `${report.events} events, ${report.pools} slot pools: ` +
            `${report.problems.length} problem(s)\n`,
        );
        return report.problems.length === 0 ? 0 : 1;
      },
      { readOnly: true },
    ),
  );

const out = (line: string) => process.stdout.write(`${line}\n`);
const when = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString());

/** Left-aligned columns, two spaces apart. */
function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  for (const row of [header, ...rows])
    out(
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    );
}

function integerOption(name: string): (value: string) => number {
  return (value) => {
    // Digits only; a number past the setting's range is refused by the setting's own check, naming it.
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return Number(value);
  };
}

function modeOption(value: string): ProjectMode {
  const mode = PROJECT_MODES.find((m) => m === value);
  if (!mode) throw new InvalidArgumentError("mode must be live or test");
  return mode;
}

const rateLimitChange = (o: { rate?: number; burst?: number }): RateLimitChange => ({
  ...(o.rate === undefined ? {} : { ratePerSecond: o.rate }),
  ...(o.burst === undefined ? {} : { burst: o.burst }),
});

const projects = program.command("projects").description("create, list and set projects");

projects
  .command("create")
  .description("create a project; --rate 0 means unlimited")
  .argument("<name>", "1-64 characters of [A-Za-z0-9_.-]")
  .option("--mode <mode>", "live or test: the prefix of its keys", modeOption, "test" as ProjectMode)
  .option("--rate <n>", `calls per second per key (default ${RATE_PER_SECOND_DEFAULT})`, integerOption("--rate"))
  .option("--burst <n>", `burst per key (default ${BURST_DEFAULT}, or twice --rate)`, integerOption("--burst"))
  .action((name: string, o: { mode: ProjectMode; rate?: number; burst?: number }) =>
    withDatabase(async (database) => {
      const p = await createProject(database, { name, mode: o.mode, ...rateLimitChange(o) }, Date.now());
      out(`created project ${p.name} (id ${p.id}, mode ${p.mode}, ${rateLimitText(p)})`);
      return 0;
    }),
  );

projects
  .command("set")
  .description("change a project's rate limit (--rate 0: unlimited); running servers apply it within API_KEY_CACHE_TTL_MS")
  .argument("<name>", "the project")
  .option("--rate <n>", "calls per second per key", integerOption("--rate"))
  .option("--burst <n>", "burst per key (kept when it still holds a second of the rate, else twice the rate)", integerOption("--burst"))
  .action((name: string, o: { rate?: number; burst?: number }) =>
    withDatabase(async (database) => {
      if (o.rate === undefined && o.burst === undefined) throw new UsageError("give --rate, --burst or both");
      const p = await setProjectRateLimit(database, name, rateLimitChange(o));
      out(`project ${p.name}: ${rateLimitText(p)}`);
      return 0;
    }),
  );

projects
  .command("list")
  .description("list projects")
  .action(() =>
    withDatabase(async (database) => {
      const rows = (await allProjects(database)).map((p) => [
        p.id.toString(),
        p.name,
        p.mode,
        p.ratePerSecond === 0 ? "unlimited" : String(p.ratePerSecond),
        // An unlimited project's burst is never used: showing its stored 0 would read as "no calls".
        p.ratePerSecond === 0 ? "unlimited" : String(p.burst),
        when(p.createdAtMs),
      ]);
      table(["ID", "NAME", "MODE", "RATE", "BURST", "CREATED"], rows);
      return 0;
    }),
  );

const keys = program.command("keys").description("create, list and revoke API keys");

keys
  .command("create")
  .description("create an API key; the key is printed once, alone on the last line")
  .requiredOption("--project <name>", "the project the key belongs to")
  .option("--label <text>", "what the key is for", "")
  .option(
    "--scope <scope>",
    "write (every call) or read (the reads: GetCustomer, GetTransaction, ListLedgerEntries, ListPools, ListSlotEvents, the entitlement reads, WatchEvents, ListAlerts, and their HTTP GET routes)",
    "write",
  )
  .action((o: { project: string; label: string; scope: string }) =>
    withDatabase(async (database) => {
      const scope = checkScope(o.scope);
      const project = await projectNamed(database, o.project);
      const created = await createApiKey(database, project, { label: o.label, scope, nowMs: Date.now() });
      out(
        `created ${scope} key ${created.prefix} for project ${project.name} in database ${database.name}; it is shown once, store it now:`,
      );
      out(created.key);
      return 0;
    }),
  );

keys
  .command("list")
  .description("list a project's keys (prefixes only: keys are never stored)")
  .requiredOption("--project <name>", "the project")
  .action((o: { project: string }) =>
    withDatabase(async (database) => {
      const project = await projectNamed(database, o.project);
      const rows = (await apiKeysOf(database, project)).map((k) => [
        k.prefix,
        k.label === "" ? "-" : k.label,
        k.scope,
        when(k.createdAtMs),
        when(k.lastUsedAtMs),
        when(k.revokedAtMs),
      ]);
      table(["PREFIX", "LABEL", "SCOPE", "CREATED", "LAST_USED", "REVOKED"], rows);
      return 0;
    }),
  );

/**
 * What `keys revoke` was given: a prefix, or a whole key (pasted with spaces or a line end around
 * it, or after "Bearer "), revoked only if it is that very key. Anything else is refused
 * echoing at most a prefix's length of it, so a key mistyped past recognition is never printed whole.
 */
function keyToRevoke(given: string): { readonly wholeKey: string } | { readonly prefix: string } {
  const text = given.trim().replace(/^Bearer\s+/i, "");
  if (text === "") throw new UsageError("give the key's prefix (keys list shows it) or the whole key");
  if (apiKeyModeOf(text) !== null) return { wholeKey: text };
  if (text.length <= API_KEY_PREFIX_LENGTH) return { prefix: text };
  throw new UsageError(
    `"${text.slice(0, API_KEY_PREFIX_LENGTH)}…" is neither a key nor a key's prefix (give the prefix keys list shows, or the whole key)`,
  );
}

keys
  .command("revoke")
  .description("revoke a key by its prefix (or the whole key: its prefix is used, and never printed back whole)")
  .argument("<prefix>", "the key's prefix, as keys list shows it, or the whole key")
  .action((given: string) =>
    withDatabase(async (database) => {
      const target = keyToRevoke(given);
      const { prefix, outcome } =
        "wholeKey" in target
          ? await revokeWholeApiKey(database, target.wholeKey, Date.now())
          : { prefix: target.prefix, outcome: await revokeApiKeyByPrefix(database, target.prefix, Date.now()) };
      const ttlMs = (() => {
        try {
          return loadConfig().API_KEY_CACHE_TTL_MS;
        } catch {
          return API_KEY_CACHE_TTL_MS_DEFAULT;
        }
      })();
      out(
        outcome === "revoked"
          ? `revoked ${prefix}; running servers refuse it within API_KEY_CACHE_TTL_MS (${ttlMs} ms)`
          : `${prefix} was already revoked`,
      );
      return 0;
    }),
  );

const events = program.command("events").description("the event feed");

events
  .command("tail")
  .description("print the kept events as JSON lines, then each new one as it commits, until interrupted (like kubectl get -w)")
  .option("--project <name>", "only this project's events (default: every project's)")
  .option("--customer <id>", "only this customer's events")
  .option("--cursor <cursor>", "start after this event's cursor (default: from the oldest kept event)", "")
  .action((o: { project?: string; customer?: string; cursor: string }) =>
    withDatabase(async (database) => {
      const project = o.project === undefined ? null : await projectNamed(database, o.project);
      let customerId: string | null = null;
      try {
        customerId = o.customer === undefined ? null : parseId(o.customer, "customer");
      } catch {
        throw new UsageError("--customer must be 1-128 characters of [A-Za-z0-9_.:@-]");
      }
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      process.once("SIGTERM", () => stop.abort());
      // A reader that has had enough (`| head -2`) closes the pipe: stop as on SIGINT.
      process.stdout.on("error", (error: NodeJS.ErrnoException) => {
        if (error.code !== "EPIPE") throw error;
        stop.abort();
      });
      await tailEvents(database, { projectId: project?.id ?? null, customerId, cursor: o.cursor }, stop.signal, (event) =>
        out(JSON.stringify(event)),
      );
      return 0;
    }),
  );

/** A command that failed for a reason no one expected (a bug): not 1, which `verify` answers for a ledger with problems. */
const UNEXPECTED_FAILURE_EXIT = 3;

try {
  await program.parseAsync();
} catch (error) {
  // commander has printed its one line already; help and --version are not mistakes.
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : 2);
  process.stderr.write(
    `velobase-billing: failed unexpectedly: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(UNEXPECTED_FAILURE_EXIT);
}
