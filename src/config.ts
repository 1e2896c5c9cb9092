import { z } from "zod";
import { apiKeyModeOf } from "./domain/api-key.js";
import { API_KEY_CACHE_TTL_MS_DEFAULT } from "./tenancy/authenticator.js";
import { LOCK_WAIT_TIMEOUT_S_DEFAULT } from "./store/database.js";
import { parseDatabaseUrl, redactDatabaseUrl } from "./store/database-url.js";
import { proxyTrustOf } from "./tenancy/client-address.js";

/**
 * A whole number in decimal digits (spaces around it allowed). Anything else is a mistake said
 * in one line, never a silent 0 (`z.coerce` reads " " as 0, which would switch the sweeper off)
 * nor another base ("0x1F90", "8e3").
 */
const whole = (min: number, max: number) =>
  z.preprocess(
    (raw) => (typeof raw === "string" && /^\s*\d+\s*$/.test(raw) ? Number(raw) : raw),
    z.number({ invalid_type_error: "must be a whole number" }).int().min(min).max(max),
  );

const port = whole(0, 65535);

/** A name or an IPv4 or IPv6 address (brackets optional: `::`, `[::1]`), kept without brackets. */
const host = z
  .string()
  .regex(
    /^(?:\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$/,
    "must be a host name or an IPv4 or IPv6 address",
  )
  .transform((h) => h.replace(/^\[(.*)\]$/, "$1"));

/** host:port as gRPC targets and log lines write it: an IPv6 address in brackets. */
export const hostPort = (hostName: string, portNumber: number): string =>
  hostName.includes(":") ? `[${hostName}]:${portNumber}` : `${hostName}:${portNumber}`;

/** A string that `check` accepts; what it throws is the one-line mistake. */
const checkedBy = (check: (value: string) => unknown) =>
  z.string().superRefine((value, ctx) => {
    try {
      check(value);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: error instanceof Error ? error.message : "invalid" });
    }
  });

const ConfigSchema = z.object({
  DATABASE_URL: checkedBy(parseDatabaseUrl).default("mysql://root@127.0.0.1:3306/velobase"),
  // With several hosts in DATABASE_URL: the first one up in URL order, or each in turn.
  DB_NODE_SELECTOR: z.enum(["order", "round_robin"]).default("order"),
  GRPC_HOST: host.default("0.0.0.0"),
  GRPC_PORT: port.default(50051),
  /** Unset: the HTTP server binds GRPC_HOST. */
  HTTP_HOST: host.optional(),
  HTTP_PORT: port.default(8080),
  // How long a client has to send a whole HTTP request, headers and body; checked every second.
  HTTP_REQUEST_TIMEOUT_MS: whole(1_000, 600_000).default(30_000),
  // Open connections each listener (gRPC's, HTTP's) holds at once, in all and per client address:
  // past them a new connection is closed at accept (tenancy/connection-limits.ts).
  CONNECTIONS_MAX: whole(1, 1_000_000).default(8_000),
  CONNECTIONS_PER_ADDRESS_MAX: whole(1, 1_000_000).default(1_000),
  // Proxies whose X-Forwarded-For names the client (addresses, CIDR ranges, loopback, linklocal,
  // uniquelocal; comma-separated). Unset: the socket's peer is the client.
  TRUSTED_PROXIES: checkedBy(proxyTrustOf).optional(),
  // A gRPC connection with no call open this long is closed with GOAWAY; clients reconnect.
  GRPC_IDLE_TIMEOUT_MS: whole(100, 86_400_000).default(300_000),
  // How often the server pings each gRPC connection; one silent as long (at most 20 s) is closed.
  GRPC_KEEPALIVE_MS: whole(100, 7_200_000).default(60_000),
  METRICS_PORT: port.optional(),
  // grpc-js's own default (4 MiB): a request at the API's field limits is far smaller.
  GRPC_MAX_MESSAGE_BYTES: whole(1024, 2 ** 31 - 1).default(4 * 1024 * 1024),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  DB_POOL_SIZE: whole(1, 1000).default(20),
  // Transactions group commit runs at once before calls of different customers wait to share one
  // (operations/group-commit.ts). Fewer, fuller transactions cost the database less: see docs/scaling.md.
  GROUP_COMMIT_TRANSACTIONS: whole(1, 1000).default(2),
  // Calls of different customers may share a transaction (side by side). "false" on a sharded
  // database (Vitess, TiDB), where a transaction must stay within one customer: docs/scaling.md.
  GROUP_COMMIT_SIDE_BY_SIDE: z
    .enum(["true", "false"])
    .default("true")
    .transform((v) => v === "true"),
  // Bench only: "off" makes writes append no events, so the bench can show what the outbox costs.
  EVENTS_OUTBOX: z.enum(["on", "off"]).default("on"),
  // Event cursors carry a tag of their event (a restored feed refuses the older ones); "off" while
  // instances of a build before tags still serve the same consumers (README, "Upgrading").
  EVENTS_CURSOR_TAGS: z.enum(["on", "off"]).default("on"),
  DB_LOCK_WAIT_TIMEOUT_S: whole(1, 3600).default(LOCK_WAIT_TIMEOUT_S_DEFAULT),
  SHUTDOWN_GRACE_MS: whole(0, 600_000).default(10_000),
  // On SIGTERM, how long the instance keeps serving while its health says NOT_SERVING, so that a
  // balancer polling it stops sending calls before the listeners close.
  SHUTDOWN_DRAIN_MS: whole(0, 600_000).default(0),
  SWEEP_INTERVAL_MS: whole(0, 3_600_000).default(1_000),
  HEALTH_CHECK_INTERVAL_MS: whole(100, 600_000).default(2_000),
  // How long a key look-up is cached; also the longest a revoke takes to reach every instance.
  API_KEY_CACHE_TTL_MS: whole(0, 600_000).default(API_KEY_CACHE_TTL_MS_DEFAULT),
  BOOTSTRAP_API_KEY: z
    .string()
    .refine((k) => apiKeyModeOf(k) !== null, "must be vb_live_ or vb_test_ followed by 32-96 characters of [A-Za-z0-9]")
    .optional(),
  REDIS_URL: z
    .string()
    .url()
    .refine((u) => /^rediss?:\/\//.test(u), "must be a redis:// or rediss:// URL")
    .optional(),
  RATE_LIMIT_KEY_PREFIX: z.string().min(1).max(128).default("velobase:ratelimit"),
  // The event feed (docs/events.md). How often the stamper and the watchers look for new events
  // when nothing nudged them (a commit on this instance does): the feed lag of other instances' writes.
  // At most 1 s, as the idle interval below: the stamper's and the publisher's leases (5 s) are
  // renewed by their polls, and a longer wait let them lapse between two.
  EVENTS_POLL_INTERVAL_MS: whole(1, 1_000).default(20),
  // What those polls slow to once the feed has been quiet for a second (never below the above):
  // a quiet deployment's query rate, and the most a quiet spell's first event waits to be found.
  // At most 1 s: the stamper's and the publisher's leases (5 s) are renewed by their polls.
  EVENTS_IDLE_POLL_INTERVAL_MS: whole(1, 1_000).default(250),
  // The least time between two stamping rounds that this instance's commits ask for: one round
  // (a transaction and its fsync) then orders the events of every write committed meanwhile.
  EVENTS_STAMP_SPACING_MS: whole(0, 1_000).default(25),
  EVENTS_RETENTION_HOURS: whole(1, 24 * 365 * 10).default(168),
  // Open WatchEvents streams per API key and per instance: each reads the feed whenever it moves.
  EVENTS_WATCHERS_PER_KEY_MAX: whole(1, 10_000).default(16),
  EVENTS_WATCHERS_PER_PROJECT_MAX: whole(1, 100_000).default(64),
  EVENTS_WATCHERS_MAX: whole(1, 100_000).default(256),
  NATS_URL: z
    .string()
    .refine((u) => /^(nats|tls|ws|wss):\/\/[^\s]+$/.test(u), "must be a nats:// or tls:// URL")
    .optional(),
  NATS_STREAM: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of [A-Za-z0-9_-]")
    .default("VELOBASE_EVENTS"),
  NATS_SUBJECT_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, "must be NATS subject tokens separated by dots")
    .max(128)
    .default("velobase"),
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  TLS_CLIENT_CA_FILE: z.string().min(1).optional(),
  // The console's cookie signing secret; unset, a random one per process (sessions end at a restart).
  CONSOLE_SESSION_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  CONSOLE_SESSION_TTL_MINUTES: whole(1, 43_200).default(60),
});

export type Config = z.infer<typeof ConfigSchema>;

/** Every setting's name (README's table documents each: test/unit/readme-settings.test.ts). */
export const CONFIG_NAMES: readonly string[] = Object.keys(ConfigSchema.shape);

export class ConfigError extends Error {}

/** Reads the configuration from the environment; a bad value is a ConfigError naming it. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = ConfigSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = issue?.path.join(".") ?? "configuration";
    throw new ConfigError(`invalid configuration: ${name}: ${issue?.message ?? "invalid"}`);
  }
  const tls = parsed.data;
  if ((tls.TLS_CERT_FILE === undefined) !== (tls.TLS_KEY_FILE === undefined)) {
    throw new ConfigError("invalid configuration: TLS_CERT_FILE and TLS_KEY_FILE must be set together");
  }
  if (tls.TLS_CLIENT_CA_FILE !== undefined && tls.TLS_CERT_FILE === undefined) {
    throw new ConfigError("invalid configuration: TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE");
  }
  return parsed.data;
}

/** The URL with its password masked, for log lines and error messages. */
export const redactUrl = redactDatabaseUrl;
