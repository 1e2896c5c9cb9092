import type { Pool, PoolConnection } from "mysql2/promise";
import { type ConnectionSource, oneStatement, timed } from "./cluster-pool.js";

/**
 * One database server's mysql2 pool, as the service uses it: a statement outside a transaction
 * gives up after `statementTimeoutMs` (a hung server answers nothing, ever), as a transaction's
 * round trip does, and its connection is then destroyed rather than given back with the
 * statement still queued on it.
 */
export class ServerPool implements ConnectionSource {
  constructor(
    private readonly pool: Pool,
    private readonly statementTimeoutMs: number,
  ) {}

  getConnection(): Promise<PoolConnection> {
    return this.pool.getConnection();
  }

  // mysql2's overloaded signatures; every form is passed on as is, with the timeout added.
  readonly query = ((sql: string, values?: unknown) =>
    this.oneOff((connection) => connection.query(timed(sql, this.statementTimeoutMs) as string, values as never))) as Pool["query"];

  readonly execute = ((sql: string, values?: unknown) =>
    this.oneOff((connection) => connection.execute(timed(sql, this.statementTimeoutMs) as string, values as never))) as Pool["execute"];

  end(): Promise<void> {
    return this.pool.end();
  }

  private async oneOff<T>(work: (connection: PoolConnection) => Promise<T>): Promise<T> {
    return oneStatement(await this.pool.getConnection(), work);
  }
}
