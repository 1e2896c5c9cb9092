import { QueryBuilder } from "drizzle-orm/mysql-core";
import { drizzle } from "drizzle-orm/mysql2";

/**
 * Drizzle's query builders without a connection: statements are built here with `.getSQL()` and
 * sent by the Tx batch runner (run-transaction.ts), many to a round trip. `writer` builds INSERT
 * and UPDATE; `reader` builds SELECT (including FOR UPDATE).
 */
export const writer = drizzle.mock();
export const reader = new QueryBuilder();
