import { setLogger } from "@grpc/grpc-js";
import { type App, startApp } from "./app.js";
import { type Config, ConfigError, loadConfig, redactUrl } from "./config.js";
import { TlsFileError } from "./grpc/tls.js";
import { createLogger } from "./logger.js";
import { DatabaseNotReadyError, DatabaseUnreachableError } from "./store/database.js";
import { shutdownTelemetry } from "./telemetry/shutdown.js";
import { UsageError } from "./tenancy/projects.js";

/** Why a start ended early: a signal asked the process to stop while it waited. */
class StopRequested extends Error {
  constructor(readonly signal: string) {
    super(`asked to stop (${signal}) while starting`);
  }
}

/** How long the last spans may take to export once the app has stopped (an unreachable collector must not hold the exit). */
const TELEMETRY_FLUSH_MS = 5_000;

/**
 * The address of a listener whose port another process holds (EADDRINUSE, as Node reports it
 * for HTTP and metrics, or inside grpc-js's bind error); null for any other failure.
 */
function addressInUse(error: unknown): string | null {
  const message = error instanceof Error ? error.message : "";
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  if (code !== "EADDRINUSE" && !message.includes("EADDRINUSE")) return null;
  return /address already in use (\S+?:\d+)/.exec(message)?.[1] ?? "a configured port";
}

/** A bind refused for its address (a name that does not resolve, an address not on this machine): its first line. */
function cannotBind(error: unknown): string | null {
  if (!(error instanceof Error)) return null;
  const code = (error as NodeJS.ErrnoException).code;
  const known = code === "ENOTFOUND" || code === "EADDRNOTAVAIL" || /Name resolution failed|EADDRNOTAVAIL|ENOTFOUND/.test(error.message);
  return known ? (error.message.split("\n")[0] ?? error.message) : null;
}

/** An expected start-up failure's one line and exit code (2: the operator's input, 1: the database or a port); null for a bug. */
function startFailureOf(error: unknown, config: Config): { line: string; code: number } | null {
  if (error instanceof DatabaseUnreachableError) {
    return { line: `cannot reach the database at ${redactUrl(config.DATABASE_URL)}: ${error.message}`, code: 1 };
  }
  if (error instanceof DatabaseNotReadyError) return { line: `${error.message} (${redactUrl(config.DATABASE_URL)})`, code: 1 };
  const address = addressInUse(error);
  if (address !== null) return { line: `cannot listen on ${address}: the address is already in use`, code: 1 };
  const bind = cannotBind(error);
  if (bind !== null) return { line: `cannot listen (GRPC_HOST, HTTP_HOST): ${bind}`, code: 1 };
  if (error instanceof UsageError || error instanceof TlsFileError) return { line: error.message, code: 2 };
  return null;
}

/** Entry point: config → database → server → signals. Start-up failures are one line each. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`velobase-billing: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(config.LOG_LEVEL);
  // grpc-js's own diagnostics go to the log as JSON lines, not to standard error (a failed
  // bind would otherwise print a second line before ours).
  setLogger({ error: (...parts: unknown[]) => log.warn({ grpc: parts.map(String).join(" ") }, "grpc-js") });
  // The handlers are in place before start-up prints its listening line: a SIGTERM that follows
  // that line at once stops the server once started, instead of killing the process by Node's
  // default action; a second signal during start-up leaves at once.
  let app: App | null = null;
  let requested: string | null = null;
  let stopping = false;
  const starting = new AbortController();
  const stop = (signal: string) => {
    if (app === null) {
      // Asked twice while starting (a start that waits on the database): leave at once.
      if (requested !== null) process.exit(1);
      requested = signal;
      // A start waiting for another instance's migrations (which may take many minutes) gives up
      // now; one that is migrating stops after the statement at work, or interrupts a statement's
      // wait for a lock, and the next start goes on from there.
      starting.abort(new StopRequested(signal));
      return;
    }
    if (stopping) {
      // A second signal (a second Ctrl-C) does not wait out the drain and the grace.
      log.warn({ signal }, "asked again to stop: leaving now, without waiting for the calls in flight");
      process.exit(1);
    }
    stopping = true;
    const since = performance.now();
    log.info({ signal }, "shutting down");
    app
      .stop()
      .then(() =>
        shutdownTelemetry(TELEMETRY_FLUSH_MS).catch((error: unknown) => log.warn({ err: error }, "could not export the last spans")),
      )
      .then(
        () => {
          // The last line of a clean stop: a log that ends without it was cut (a kill, a crash).
          log.info({ signal, durationMs: Math.round(performance.now() - since) }, "stopped");
          process.exit(0);
        },
        (error: unknown) => {
          log.error({ err: error }, "shutdown failed");
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  try {
    app = await startApp(config, { log, signal: starting.signal });
  } catch (error) {
    if (error instanceof StopRequested) {
      log.info({ signal: error.signal }, "stopped while starting, as asked; the next start goes on from where this one stopped");
      process.exit(0);
    }
    const failure = startFailureOf(error, config);
    if (failure === null) throw error;
    process.stderr.write(`velobase-billing: ${failure.line}\n`);
    process.exit(failure.code);
  }
  if (requested !== null) stop(requested);
}

await main();
