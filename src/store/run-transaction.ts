import { setTimeout as sleep } from "node:timers/promises";
import { getTableName, SQL, sql, StringChunk, Table } from "drizzle-orm";
import { MySqlDialect } from "drizzle-orm/mysql-core";
import type { Connection as CoreConnection } from "mysql2";
import type { PoolConnection, ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { BillingError } from "../errors/billing-error.js";
import type { Database } from "./database.js";
import { isConnectionFailure, isDuplicateOn, isOutOfRange, isRetryableConflict, retryableConflictOf } from "./sql-errors.js";

/** Deadlocks and lock-wait timeouts are retried this many times before service_unavailable. */
export const TRANSACTION_ATTEMPTS_MAX = 5;
const BACKOFF_BASE_MS = 5;

/**
 * Two requests racing for one idempotency key: the loser's INSERT hits the UNIQUE index; a fresh
 * attempt then finds the winner's row and replays or reports the conflict.
 */
export const IDEMPOTENCY_INDEXES = [
  "transactions_project_tx_uq",
  "idempotency_outcomes_key_uq",
  // Two first deposits of one customer: the second finds it on its retry.
  "customers_project_customer_uq",
] as const;

export type Row = RowDataPacket;
export type StatementResult = Row[] | ResultSetHeader;

const dialect = new MySqlDialect();

/**
 * A batch whose text and parameters exceed this is sent in several round trips (still one
 * transaction): a call touching thousands of accounts must stay well under max_allowed_packet
 * (16 MiB by default on MariaDB, where the whole batch travels as one packet).
 */
export const BATCH_BYTES_MAX = 4 * 1024 * 1024;

export interface Query {
  readonly sql: string;
  readonly params: unknown[];
}

/**
 * A statement's text and parameters, as drizzle's MySQL dialect would build them, for the kinds
 * of chunk `sql` templates hold (text, nested templates, tables, plain values); anything else
 * (columns, Param, placeholders from the query builder) goes through the dialect. Every write
 * builds hundreds of chunks, and the dialect spent about a tenth of the server's CPU on them
 * (an `is()` check and a small object per chunk); this walk does the same in one pass.
 * test/unit/statement-compile.test.ts checks both give the same query.
 */
export function compileStatement(statement: SQL): Query {
  const text: string[] = [];
  const params: unknown[] = [];
  return appendChunks(statement, text, params) ? { sql: text.join(""), params } : dialect.sqlToQuery(statement);
}

/** A plain value of a template: sent as a parameter. */
const isPlainValue = (chunk: unknown): boolean =>
  chunk === null ||
  typeof chunk === "string" ||
  typeof chunk === "number" ||
  typeof chunk === "bigint" ||
  typeof chunk === "boolean" ||
  chunk instanceof Date;

function appendChunks(statement: SQL, text: string[], params: unknown[]): boolean {
  // A template made with .inlineParams() (drizzle keeps the flag private) is left to the dialect.
  if (Reflect.get(statement, "shouldInlineParams") === true) return false;
  for (const chunk of statement.queryChunks) {
    if (!appendChunk(chunk, text, params)) return false;
  }
  return true;
}

function appendChunk(chunk: unknown, text: string[], params: unknown[]): boolean {
  if (chunk === undefined) return true;
  if (chunk instanceof StringChunk) text.push(chunk.value.join(""));
  else if (chunk instanceof SQL) return appendChunks(chunk, text, params);
  else if (isPlainValue(chunk)) {
    text.push("?");
    params.push(chunk);
  } else if (chunk instanceof Table) text.push(`\`${getTableName(chunk)}\``);
  else return false;
  return true;
}

/** About how many bytes a query takes on the wire once its parameters are inlined. */
function sizeOf(query: Query): number {
  let size = query.sql.length;
  for (const p of query.params) size += typeof p === "string" ? p.length * 3 + 2 : 24;
  return size;
}

/** The queries in consecutive groups of at most BATCH_BYTES_MAX (a larger single one alone). */
function groupBySize(queries: readonly Query[]): Query[][] {
  const groups: Query[][] = [];
  let current: Query[] = [];
  let size = 0;
  for (const query of queries) {
    const querySize = sizeOf(query);
    if (current.length > 0 && size + querySize > BATCH_BYTES_MAX) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(query);
    size += querySize;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/** One multi-statement query; parameters are appended one by one (a spread of 10^5 overflows the stack). */
function joinQueries(queries: readonly Query[]): Query {
  const params: unknown[] = [];
  for (const query of queries) for (const p of query.params) params.push(p);
  return { sql: queries.map((q) => q.sql).join(";\n"), params };
}

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

  /**
   * Runs the statements in order in one round trip (several when they exceed BATCH_BYTES_MAX);
   * returns one result per statement.
   */
  async run(statements: readonly SQL[], options: { commit?: boolean } = {}): Promise<StatementResult[]> {
    if (this.committed) throw new Error("transaction already committed");
    const first = this.begun ? 0 : 1;
    const all = [...(first ? [sql`BEGIN`] : []), ...statements, ...(options.commit ? [sql`COMMIT`] : [])];
    this.begun = true;
    const list: StatementResult[] = [];
    for (const group of groupBySize(all.map(compileStatement))) {
      const results = await this.send(joinQueries(group));
      // mysql2 returns a plain result for one statement and an array of results for several.
      list.push(...(group.length === 1 ? [results as StatementResult] : (results as StatementResult[])));
    }
    if (options.commit) this.committed = true;
    return list.slice(first, first + statements.length);
  }

  /** Runs a batch's statements in one round trip and parses their results. */
  async runBatch<T>(batch: Batch<T>, options: { commit?: boolean } = {}): Promise<T> {
    return batch.parse(await this.run(batch.statements, options));
  }

  private send(query: Query): Promise<unknown> {
    // The callback API: the promise wrapper captures a stack trace per query, measurable on
    // the hot path (--cpu-prof), and errors here are classified, not read by people.
    // mysql2's typings call this field the promise Connection; at run time it is the core one.
    const core = this.connection.connection as unknown as CoreConnection;
    return new Promise<unknown>((resolve, reject) =>
      core.query(query.sql, query.params, (error, rows) => (error ? reject(error) : resolve(rows))),
    );
  }

  async rollback(): Promise<void> {
    if (!this.isOpen) return;
    this.begun = false;
    await this.connection.query("ROLLBACK");
  }
}

/**
 * Statements sent together and what their results mean: `parse` receives exactly one result per
 * statement, in order. Batches compose (`sequence`), so one round trip can carry the writes of one
 * operation and the reads of the next.
 */
export interface Batch<T> {
  readonly statements: readonly SQL[];
  readonly parse: (results: readonly StatementResult[]) => T;
}

export const batchOf = <T>(statements: readonly SQL[], parse: (results: readonly StatementResult[]) => T): Batch<T> => ({
  statements,
  parse,
});

/** A batch whose results mean nothing (writes checked by the database itself). */
export const writesOnly = (statements: readonly SQL[]): Batch<void> => batchOf(statements, () => undefined);

/** The batch with its parsed value transformed. */
export const mapBatch = <T, U>(batch: Batch<T>, f: (value: T) => U): Batch<U> =>
  batchOf(batch.statements, (results) => f(batch.parse(results)));

/** Two batches in one round trip, each parsing its own results. */
export function sequence<A, B>(first: Batch<A>, second: Batch<B>): Batch<[A, B]> {
  const split = first.statements.length;
  return batchOf([...first.statements, ...second.statements], (results) => [
    first.parse(results.slice(0, split)),
    second.parse(results.slice(split)),
  ]);
}

/** Batches in one round trip, each parsing its own results. */
export function all<T>(batches: readonly Batch<T>[]): Batch<T[]> {
  return batchOf(
    batches.flatMap((b) => b.statements),
    (results) => {
      let at = 0;
      return batches.map((b) => {
        const own = results.slice(at, at + b.statements.length);
        at += b.statements.length;
        return b.parse(own);
      });
    },
  );
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
  onRetry?(reason: "deadlock" | "lock_wait_timeout" | "duplicate_key", attempt: number): void;
}

/**
 * Runs `work` in one database transaction and retries the transient failures with jitter. The
 * work commits by passing `commit: true` to its last `run`; a transaction it leaves open (a
 * replay, a refusal) is rolled back, so nothing it wrote before deciding survives.
 */
export async function runTransaction<T>(database: Database, work: (tx: Tx) => Promise<T>, observer: RetryObserver = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await attemptTransaction(database, work);
    } catch (error) {
      if (error instanceof BillingError) throw error;
      const conflict = retryableConflictOf(error);
      const duplicate = conflict === null && isDuplicateOn(error, IDEMPOTENCY_INDEXES);
      if (!(conflict || duplicate) || attempt >= TRANSACTION_ATTEMPTS_MAX) throw translateStoreError(error);
      observer.onRetry?.(conflict ?? "duplicate_key", attempt);
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

/**
 * The database connection was lost (as is or as the service_unavailable it became): a COMMIT in
 * flight may have happened, so the work must not be run again as if it had not.
 */
export function isLostConnection(error: unknown): boolean {
  return isConnectionFailure(error) || (error instanceof BillingError && isConnectionFailure(error.cause));
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

/** A savepoint before write `slot` of a shared transaction, so a refused write can be undone alone. */
export const savepoint = (slot: number): Batch<void> => writesOnly([sql.raw(`SAVEPOINT w${Math.trunc(slot)}`)]);

/** Undoes what write `slot` did since its savepoint (its load may have created its customer). */
export const rollbackToSavepoint = (slot: number): Batch<void> => writesOnly([sql.raw(`ROLLBACK TO SAVEPOINT w${Math.trunc(slot)}`)]);

export const NO_STATEMENTS: Batch<void> = writesOnly([]);

/**
 * Groups of statements sent in one round trip, in the order the object lists them, each group's
 * results under its own name: callers read `results.holds`, never `results[3]`.
 */
export function namedBatch<K extends string>(groups: { readonly [name in K]: readonly SQL[] }): Batch<Record<K, StatementResult[]>> {
  const names = Object.keys(groups) as K[];
  return batchOf(
    names.flatMap((name) => groups[name]),
    (results) => {
      const named = {} as Record<K, StatementResult[]>;
      let at = 0;
      for (const name of names) {
        const count = groups[name].length;
        named[name] = results.slice(at, at + count);
        at += count;
      }
      return named;
    },
  );
}
