import { setTimeout as sleep } from "node:timers/promises";
import { SQL as DrizzleSQL, getTableName, StringChunk, Table } from "drizzle-orm";
import { MySqlDialect } from "drizzle-orm/mysql-core";
import type { Connection as CoreConnection } from "mysql2";
import type { PoolConnection, ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { unlessLost } from "./cluster-pool.js";
import { BillingError } from "../errors/billing-error.js";
import { PrefetchRaced } from "../domain/plans/prefetch-raced.js";
import type { Database } from "./database.js";
import { SQL, sql } from "./sql.js";
import {
  isConnectionFailure,
  isDuplicateOn,
  isNotPrimary,
  isOutOfRange,
  isRetryableConflict,
  isTableGone,
  retryableConflictOf,
} from "./sql-errors.js";
import { groupsWithin } from "./statement-chunks.js";

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
 * A batch whose text (values inlined) exceeds this many characters is sent in several round trips
 * (still one transaction): a call touching thousands of accounts must stay well under
 * max_allowed_packet (16 MiB by default on MariaDB, where the whole batch travels as one packet).
 * A character is at most 3 bytes in UTF-8 (a surrogate pair, two characters, 4): at most 12 MiB.
 */
export const BATCH_BYTES_MAX = 4 * 1024 * 1024;

/** What a statement's values are escaped and formatted with: mysql2's connection has both. */
export interface Escaping {
  escape(value: unknown): string;
  format(sql: string, values: unknown[]): string;
}

/**
 * The statement's text, every value escaped in place by the connection's own escaping (what
 * mysql2 does with `?` and parameters), in one walk of the template (text, nested templates,
 * drizzle's templates and tables, plain values): mysql2 then sends the batch as it is (the pool's
 * queryFormat) instead of scanning its whole text again for placeholders. What the walk does not
 * know (a column, drizzle's Param) goes through drizzle's MySQL dialect and the connection's
 * format. The unit test test/unit/statement-compile.test.ts checks both give the same text.
 */
export function inlineStatement(statement: SQL, connection: Escaping): string {
  const text: string[] = [];
  if (appendTemplate(statement, text, connection)) return text.join("");
  const query = dialect.sqlToQuery(statement.getSQL());
  return connection.format(query.sql, query.params);
}

/** A plain value of a template: escaped into the text. */
const isPlainValue = (chunk: unknown): boolean =>
  chunk === null ||
  typeof chunk === "string" ||
  typeof chunk === "number" ||
  typeof chunk === "bigint" ||
  typeof chunk === "boolean" ||
  chunk instanceof Date;

function appendTemplate(statement: SQL, text: string[], connection: Escaping): boolean {
  const { strings, values } = statement;
  text.push(strings[0] ?? "");
  for (let i = 0; i < values.length; i++) {
    if (!appendChunk(values[i], text, connection)) return false;
    text.push(strings[i + 1] ?? "");
  }
  return true;
}

function appendChunks(statement: DrizzleSQL, text: string[], connection: Escaping): boolean {
  // A template made with .inlineParams() (drizzle keeps the flag private) is left to the dialect.
  if (Reflect.get(statement, "shouldInlineParams") === true) return false;
  for (const chunk of statement.queryChunks) {
    if (!appendChunk(chunk, text, connection)) return false;
  }
  return true;
}

function appendChunk(chunk: unknown, text: string[], connection: Escaping): boolean {
  if (chunk === undefined) return true;
  if (isPlainValue(chunk)) text.push(connection.escape(chunk));
  else if (chunk instanceof SQL) return appendTemplate(chunk, text, connection);
  else if (chunk instanceof StringChunk) text.push(chunk.value.join(""));
  else if (chunk instanceof DrizzleSQL) return appendChunks(chunk, text, connection);
  else if (chunk instanceof Table) text.push(`\`${getTableName(chunk)}\``);
  else return false;
  return true;
}

/** The statements in consecutive groups of at most BATCH_BYTES_MAX characters in all (a larger one alone). */
const groupBySize = (statements: readonly string[]): string[][] =>
  groupsWithin(statements, (statement) => statement.length, BATCH_BYTES_MAX);

/** Waits until this Galera node has applied what the cluster committed before it (see Tx). */
const CAUSAL_WAIT = sql`SET STATEMENT wsrep_sync_wait = 1 FOR SELECT 1`;

/**
 * One database transaction driven in batches: each `run` sends its statements in one round
 * trip (the first one prefixed by BEGIN, the finishing one followed by COMMIT). A hot customer's
 * throughput is bounded by how long its row stays locked, and that is counted in round trips:
 * a spend is two (lock and read; write and commit).
 */
/**
 * A failure of a transaction's work that the transaction passes on as it is, without retrying it
 * or reading it as the server's (a list giving its transaction up to run again otherwise).
 */
export class WorkGivenUp extends Error {}

export class Tx {
  private begun = false;
  private committed = false;
  private commitSent = false;
  /**
   * The connection's session holds a setting of this transaction's (a bounded lock wait) not yet
   * set back: the connection is closed, not returned to the pool, if the transaction ends so.
   */
  sessionChanged = false;

  /**
   * `causal` (on a Galera node): the first round trip waits until the node has applied every
   * write the cluster had committed (wsrep_sync_wait), so the transaction's locking reads see
   * what another node just acknowledged. Later reads need no wait: a write committed elsewhere
   * after it conflicts with this transaction's at COMMIT (a certification failure).
   * `timeoutMs`: how long one round trip may take before its connection is given up as lost
   * (PROTOCOL_SEQUENCE_TIMEOUT): a hung server answers nothing, ever. `lost`: aborts when the
   * connection's node is found hung sooner (a cluster's probe), failing the round trip at once.
   */
  constructor(
    private readonly connection: PoolConnection,
    private readonly causal = false,
    private readonly timeoutMs?: number,
    private readonly lost?: AbortSignal,
  ) {}

  get isCommitted(): boolean {
    return this.committed;
  }

  get isOpen(): boolean {
    return this.begun && !this.committed;
  }

  /** A batch carrying COMMIT was sent: if it failed, whether it committed is unknown. */
  get isCommitSent(): boolean {
    return this.commitSent;
  }

  /**
   * Runs the statements in order in one round trip (several when they exceed BATCH_BYTES_MAX);
   * returns one result per statement.
   */
  async run(statements: readonly SQL[], options: { commit?: boolean } = {}): Promise<StatementResult[]> {
    if (this.committed) throw new Error("transaction already committed");
    const opening = this.begun ? [] : this.causal ? [sql`BEGIN`, CAUSAL_WAIT] : [sql`BEGIN`];
    const first = opening.length;
    const all = [...opening, ...statements, ...(options.commit ? [sql`COMMIT`] : [])];
    this.begun = true;
    const list: StatementResult[] = [];
    const core = this.core();
    const queries = all.map((statement) => inlineStatement(statement, core));
    // On Galera each statement goes alone: when a replicated write-set aborts this transaction
    // between two statements of one multi-statement packet, the server was seen to run the rest
    // of the packet outside any transaction (a stored outcome committed without its writes, a
    // call answered as done that was not). Sent alone, the next statement gets the deadlock error.
    const groups = this.causal ? queries.map((q) => [q]) : groupBySize(queries);
    for (const [i, group] of groups.entries()) {
      // Only the round trip carrying COMMIT may have committed; one failed before it is retried.
      if (options.commit && i === groups.length - 1) this.commitSent = true;
      const results = await this.send(group.join(";\n"));
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

  /** mysql2's typings call this field the promise Connection; at run time it is the core one. */
  private core(): CoreConnection {
    return this.connection.connection as unknown as CoreConnection;
  }

  private send(query: string): Promise<unknown> {
    // The callback API: the promise wrapper captures a stack trace per query, measurable on
    // the hot path (--cpu-prof), and errors here are classified, not read by people. The values
    // are in the text already (inlineStatement): mysql2 sends it as it is (query-format.ts).
    const core = this.core();
    const options = this.timeoutMs === undefined ? { sql: query } : { sql: query, timeout: this.timeoutMs };
    const sent = new Promise<unknown>((resolve, reject) => core.query(options, (error, rows) => (error ? reject(error) : resolve(rows))));
    return unlessLost(this.lost, sent);
  }

  async rollback(): Promise<void> {
    if (!this.isOpen) return;
    this.begun = false;
    await this.send("ROLLBACK");
  }

  /**
   * Whether the server ended the open transaction by itself. On Galera a replicated write-set that
   * conflicts with a local transaction aborts it (brute-force abort); a statement of the same
   * batch that then fails reports its own error (seen: 1048 from a subquery that no longer finds
   * the row the batch inserted before the abort) instead of the deadlock, with nothing of the
   * transaction left. That is a conflict like a certification failure: retried.
   */
  async endedByServer(): Promise<boolean> {
    try {
      const rows = (await this.send("SELECT @@in_transaction AS open")) as Row[];
      return Number(rows[0]?.open) === 0;
    } catch {
      return false;
    }
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

/**
 * Why a transaction ran again. On a Galera node, a deadlock error (1213) on the batch that
 * carries COMMIT is a certification failure (or a brute-force abort by a replicated write):
 * another node committed a conflicting write first. `connection_lost`: the connection failed, or
 * reached a node outside the primary component, before COMMIT was sent, so nothing committed.
 * `prefetch_raced`: a hold or charge committed between the prefetch's statements (PrefetchRaced).
 */
export type RetryReason =
  | "deadlock"
  | "lock_wait_timeout"
  | "duplicate_key"
  | "certification_failure"
  | "connection_lost"
  | "prefetch_raced";

export interface RetryObserver {
  onRetry?(reason: RetryReason, attempt: number): void;
}

/** A failure of one attempt, with what the retry loop needs to know of it. */
class AttemptFailure extends Error {
  constructor(
    readonly failure: unknown,
    readonly commitSent: boolean,
    /** A Galera node rolled the transaction back under it (see Tx.endedByServer). */
    readonly abortedByCluster = false,
  ) {
    super("transaction attempt failed", { cause: failure });
  }
}

function retryReasonOf(database: Database, failure: AttemptFailure): RetryReason | null {
  const { failure: error, commitSent, abortedByCluster } = failure;
  if (abortedByCluster) return "certification_failure";
  if (error instanceof PrefetchRaced) return "prefetch_raced";
  const conflict = retryableConflictOf(error);
  if (conflict === "deadlock" && database.galera && commitSent) return "certification_failure";
  if (conflict) return conflict;
  if (isDuplicateOn(error, IDEMPOTENCY_INDEXES)) return "duplicate_key";
  if (!commitSent && (isConnectionFailure(error) || isNotPrimary(error))) return "connection_lost";
  return null;
}

/**
 * Runs `work` in one database transaction and retries the transient failures with jitter. The
 * work commits by passing `commit: true` to its last `run`; a transaction it leaves open (a
 * replay, a refusal) is rolled back, so nothing it wrote before deciding survives. No retry is
 * begun once `signal` has aborted (the caller has gone, or its deadline passed): the failure of
 * ours that called for the retry is the call's answer, so an outage whose callers give up while
 * it lasts is still counted as one.
 */
export async function runTransaction<T>(
  database: Database,
  work: (tx: Tx) => Promise<T>,
  observer: RetryObserver = {},
  signal?: AbortSignal,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await attemptTransaction(database, work);
    } catch (thrown) {
      const reason = retryableReasonOf(database, thrown, attempt >= TRANSACTION_ATTEMPTS_MAX || signal?.aborted === true);
      observer.onRetry?.(reason, attempt);
      // A lost connection is retried at once, on the next node of a cluster.
      if (reason !== "connection_lost") await sleep(Math.random() * BACKOFF_BASE_MS * 2 ** attempt);
    }
  }
}

/** Why the failed attempt runs again; throws (translated) what must not be retried, and any failure of the last attempt. */
function retryableReasonOf(database: Database, thrown: unknown, lastAttempt: boolean): RetryReason {
  if (!(thrown instanceof AttemptFailure)) throw translateStoreError(thrown);
  const error = thrown.failure;
  if (error instanceof BillingError || error instanceof WorkGivenUp) throw error;
  const reason = retryReasonOf(database, thrown);
  if (reason === null || lastAttempt) throw translateStoreError(error);
  return reason;
}

async function attemptTransaction<T>(database: Database, work: (tx: Tx) => Promise<T>): Promise<T> {
  // No connection from any server: not retried here (a cluster already tried every node).
  const connection = await database.pool.getConnection();
  let broken = false;
  const tx = new Tx(connection, database.galera, database.statementTimeoutMs, database.pool.lostSignal?.(connection));
  try {
    const result = await work(tx);
    await tx.rollback();
    return result;
  } catch (error) {
    broken = isConnectionFailure(error) || isNotPrimary(error);
    if (isNotPrimary(error)) database.pool.noteFailure?.(connection, error);
    const aborted =
      !broken &&
      database.galera &&
      tx.isOpen &&
      !(error instanceof BillingError || error instanceof WorkGivenUp) &&
      (await tx.endedByServer());
    if (!broken) await tx.rollback().catch(() => (broken = true));
    throw new AttemptFailure(error, tx.isCommitSent, aborted);
  } finally {
    if (broken || tx.sessionChanged) connection.destroy();
    else connection.release();
  }
}

/**
 * The database connection was lost, or its Galera node left the primary component (as is or as
 * the service_unavailable it became): a COMMIT in flight may have happened, so the work must not
 * be run again as if it had not.
 */
export function isLostConnection(error: unknown): boolean {
  const lost = (e: unknown) => isConnectionFailure(e) || isNotPrimary(e);
  return lost(error) || (error instanceof BillingError && lost(error.cause));
}

/**
 * A transaction given up because its lock waits ran out, attempt after attempt (as is or as the
 * service_unavailable it became): another transaction held a row it needed all along.
 */
export function isLockWaitExhausted(error: unknown): boolean {
  const waited = (e: unknown) => retryableConflictOf(e) === "lock_wait_timeout";
  return waited(error) || (error instanceof BillingError && waited(error.cause));
}

/** Storage failures that have a public meaning; anything else stays a bug (server_error). */
export function translateStoreError(error: unknown): unknown {
  if (error instanceof BillingError) return error;
  // A table gone under the running service (a restore) is an outage of the database, not a bug.
  if (isConnectionFailure(error) || isRetryableConflict(error) || isNotPrimary(error) || isTableGone(error)) {
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
