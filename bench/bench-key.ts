import { openDatabase } from "../src/store/database.js";
import { createApiKey } from "../src/tenancy/api-keys.js";
import { createProject } from "../src/tenancy/projects.js";

/**
 * The bench's own project and write key, made before the server starts (as an operator would
 * with the CLI). Its limit is far above what this machine serves, so the limiter's cost is
 * measured but it never refuses a call.
 */
export async function benchKey(databaseUrl: string): Promise<string> {
  // Two connections: migrations hold one for their lock and run on the other.
  const database = await openDatabase(databaseUrl, { poolSize: 2 });
  try {
    const project = await createProject(database, { name: "bench", mode: "test", ratePerSecond: 1_000_000, burst: 2_000_000 }, Date.now());
    return (await createApiKey(database, project, { label: "bench", scope: "write", nowMs: Date.now() })).key;
  } finally {
    await database.close();
  }
}
