import { z } from "zod";

const port = z.coerce.number().int().min(0).max(65535);

const ConfigSchema = z.object({
  DATABASE_URL: z
    .string()
    .url()
    .refine((u) => /^mysql:\/\//.test(u), "must be a mysql:// URL")
    .default("mysql://root@127.0.0.1:3306/velobase"),
  GRPC_HOST: z.string().min(1).default("0.0.0.0"),
  GRPC_PORT: port.default(50051),
  /** Unset: the HTTP server binds GRPC_HOST. */
  HTTP_HOST: z.string().min(1).optional(),
  HTTP_PORT: port.default(8080),
  METRICS_PORT: port.optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  DB_POOL_SIZE: z.coerce.number().int().min(1).max(1000).default(20),
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
  SWEEP_INTERVAL_MS: z.coerce.number().int().min(0).max(3_600_000).default(1_000),
  HEALTH_CHECK_INTERVAL_MS: z.coerce.number().int().min(100).max(600_000).default(2_000),
});

export type Config = z.infer<typeof ConfigSchema>;

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
  return parsed.data;
}

/** The URL with its password masked, for log lines and error messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable url>";
  }
}
