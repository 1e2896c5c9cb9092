import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The Galera tier needs a cluster: npm run test:galera (vitest.galera.config.ts).
    exclude: [...configDefaults.exclude, "test/galera/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Test files spend most of their time waiting on MariaDB, NATS and the servers they start, so
    // three at a time keep two cores busy: on this project's 2-core machines the suite took 328 s
    // against 583 s one file at a time (vitest's default there, cores − 1) and 359 s four at a
    // time. Each file has its own database and ports, so files never share state.
    maxWorkers: 3,
  },
});
