import { Command } from "commander";
import { verifyLedger } from "./billing/verify.js";
import { ConfigError, loadConfig, redactUrl } from "./config.js";
import { DatabaseUnreachableError, openDatabase, type Database } from "./store/database.js";

/** Operators' commands (commander): `migrate` and `verify`. */

async function withDatabase(run: (database: Database) => Promise<number>): Promise<never> {
  let url = "";
  try {
    url = loadConfig().DATABASE_URL;
    const database = await openDatabase(url, { poolSize: 2 });
    try {
      process.exit(await run(database));
    } finally {
      await database.close();
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`velobase-billing: ${error.message}\n`);
      process.exit(2);
    }
    if (error instanceof DatabaseUnreachableError) {
      process.stderr.write(`velobase-billing: cannot reach the database at ${redactUrl(url)}: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}

const program = new Command("velobase-billing").description("velobase-billing operator commands");

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
  .description("recompute every account from the ledger and every slot pool from its events; exit 1 when any difference exists")
  .action(() =>
    withDatabase(async (database) => {
      const report = await verifyLedger(database.db);
      for (const problem of report.problems) process.stdout.write(`${problem}\n`);
      process.stdout.write(
        `checked ${report.accounts} accounts, ${report.transactions} transactions, ${report.ledgerEntries} ledger entries, ` +
          `${report.pools} slot pools: ` +
          `${report.problems.length} problem(s)\n`,
      );
      return report.problems.length === 0 ? 0 : 1;
    }),
  );

await program.parseAsync();
