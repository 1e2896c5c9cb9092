import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The Galera tier needs a cluster: npm run test:galera (vitest.galera.config.ts).
    exclude: [...configDefaults.exclude, "test/galera/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
