import { setTimeout as sleep } from "node:timers/promises";
import { sql, type SQL } from "drizzle-orm";
import { MySqlDialect } from "drizzle-orm/mysql-core";
import type { Connection as CoreConnection } from "mysql2";
import type { PoolConnection, ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { BillingError } from "../errors/billing-error.js";
import type { Database } from "./database.js";
import { isConnectionFailure, isDuplicateOn, isOutOfRange, isRetryableConflict } from "./sql-errors.js";

/** Deadlocks and lock-wait timeouts are retried this many times before service_unavailable. */
export const TRANSACTION_ATTEMPTS_MAX = 5;
const BACKOFF_BASE_MS = 5;

/**
 * Two requests racing for one idempotency key: the loser's INSERT hits the UNIQUE index; a fresh
 * attempt then finds the winner's row and replays or reports the conflict.
 */
export const IDEMPOTENCY_INDEXES = [
  "transactions_project_tx_uq",
  "deposit_keys_project_key_uq",
  "slot_keys_project_key_uq",
] as const;

export type Row = RowDataPacket;
export type StatementResult = Row[] | ResultSetHeader;

const dialect = new MySqlDialect();

/**
 * One database transaction driven in batches: each `run` sends its statements in one round
 * trip (the first one prefixed by BEGIN, the finishing one followed by COMMIT). A hot customer's
 * throughput is bounded by how long its row stays locked, and that is counted in round trips:
 * a spend is two (lock and read; write and commit).
 */
export class Tx {
  private begun = false;
  private committed = false;

  constructor(private readonly connection: PoolConnection) {}

  get isCommitted(): boolean {
    return this.committed;
  }

  get isOpen(): boolean {
    return this.begun && !this.committed;
  }

  /** Runs the statements in order in one round trip; returns one result per statement. */
  async run(statements: readonly SQL[], options: { commit?: boolean } = {}): Promise<StatementResult[]> {
    if (this.committed) throw new Error("transaction already committed");
    const first = this.begun ? 0 : 1;
    const all = [...(first ? [sql`BEGIN`] : []), ...statements, ...(options.commit ? [sql`COMMIT`] : [])];
    const query = dialect.sqlToQuery(sql.join(all, sql`;\n`));
    this.begun = true;
    // The callback API: the promise wrapper captures a stack trace per query, measurable on
    // the hot path (--cpu-prof), and errors here are classified, not read by people.
    // mysql2's typings call this field the promise Connection; at run time it is the core one.
    const core = this.connection.connection as unknown as CoreConnection;
    const results = await new Promise<unknown>((resolve, reject) =>
      core.query(query.sql, query.params, (error, rows) => (error ? reject(error) : resolve(rows))),
    );
    if (options.commit) this.committed = true;
    // mysql2 returns a plain result for one statement and an array of results for several.
    const list = (all.length === 1 ? [results] : results) as StatementResult[];
    return list.slice(first, first + statements.length);
  }

  async rollback(): Promise<void> {
    if (!this.isOpen) return;
    this.begun = false;
    await this.connection.query("ROLLBACK");
  }
}

/** The statements of a batch, without the ones a step did not need. */
export function compact(statements: ReadonlyArray<SQL | null>): SQL[] {
  return statements.filter((s): s is SQL => s !== null);
}

export function rowsOf(result: StatementResult | undefined): Row[] {
  if (!Array.isArray(result)) throw new Error("expected rows from a SELECT");
  return result;
}

export function headerOf(result: StatementResult | undefined): ResultSetHeader {
  if (result === undefined || Array.isArray(result)) throw new Error("expected a write result");
  return result;
}

export interface RetryObserver {
  onRetry?(reason: "deadlock" | "duplicate_key", attempt: number): void;
}

/**
 * Runs `work` in one database transaction and retries the transient failures with jitter. The
 * work commits by passing `commit: true` to its last `run`; a transaction it leaves open (a
 * replay, a refusal) is rolled back, so nothing it wrote before deciding survives.
 */
export async function runTransaction<T>(
  database: Database,
  work: (tx: Tx) => Promise<T>,
  observer: RetryObserver = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await attemptTransaction(database, work);
    } catch (error) {
      if (error instanceof BillingError) throw error;
      const conflict = isRetryableConflict(error);
      const duplicate = !conflict && isDuplicateOn(error, IDEMPOTENCY_INDEXES);
      if (!(conflict || duplicate) || attempt >= TRANSACTION_ATTEMPTS_MAX) throw translateStoreError(error);
      observer.onRetry?.(conflict ? "deadlock" : "duplicate_key", attempt);
      await sleep(Math.random() * BACKOFF_BASE_MS * 2 ** attempt);
    }
  }
}

async function attemptTransaction<T>(database: Database, work: (tx: Tx) => Promise<T>): Promise<T> {
  const connection = await database.pool.getConnection();
  let broken = false;
  const tx = new Tx(connection);
  try {
    const result = await work(tx);
    await tx.rollback();
    return result;
  } catch (error) {
    broken = isConnectionFailure(error);
    if (!broken) await tx.rollback().catch(() => (broken = true));
    throw error;
  } finally {
    if (broken) connection.destroy();
    else connection.release();
  }
}

/** Storage failures that have a public meaning; anything else stays a bug (server_error). */
export function translateStoreError(error: unknown): unknown {
  if (error instanceof BillingError) return error;
  if (isConnectionFailure(error) || isRetryableConflict(error)) {
    return new BillingError("service_unavailable", undefined, {}, { cause: error });
  }
  if (isOutOfRange(error)) {
    return new BillingError(
      "invalid_argument",
      "The amount would take an account beyond its limit.",
      { field: "amount" },
      { cause: error },
    );
  }
  return error;
}

/** Runs a read outside a transaction, with the same translation of storage failures. */
export async function runQuery<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw translateStoreError(error);
  }
}
