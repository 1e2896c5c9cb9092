import { defineConfig } from "vitest/config";

/** The Galera tier (npm run test:galera): three local nodes from scripts/galera.sh, files one at a time. */
export default defineConfig({
  test: {
    include: ["test/galera/**/*.test.ts"],
    globalSetup: ["test/galera/global-setup.ts"],
    testTimeout: 180_000,
    hookTimeout: 300_000,
    pool: "forks",
    fileParallelism: false,
  },
});
