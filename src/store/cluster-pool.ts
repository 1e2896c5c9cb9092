import mysql, { type Pool, type PoolCluster, type PoolConnection, type PoolOptions } from "mysql2/promise";
import type { DatabaseHost } from "./database-url.js";
import { isConnectionFailure, isNotPrimary } from "./sql-errors.js";

/** Which node a new connection comes from: the first one up in URL order, or each in turn. */
export type NodeSelector = "order" | "round_robin";

/** A failed node is left out for this long before a connection is tried on it again. */
export const RESTORE_NODE_TIMEOUT_MS = 5_000;
const PROBE_TIMEOUT_MS = 2_000;
/** Ready probes in a row before a node taken out is used again. */
const READY_PROBES_TO_RETURN = 2;
/** mysql2's answers when a pattern names no node, or only offline ones. */
const NO_ONLINE_NODE: ReadonlySet<string> = new Set(["POOL_NOEXIST", "POOL_NONEONLINE"]);

/** What a pool is asked for by drizzle and by runTransaction: connections, and one-off queries. */
export type ConnectionSource = Pick<Pool, "getConnection" | "query" | "execute" | "end"> & {
  /** Told of a connection's failure, so a node that cannot serve is left out (clusters only). */
  noteFailure?(connection: PoolConnection, error: unknown): void;
};

export interface ClusterOptions {
  readonly hosts: readonly DatabaseHost[];
  /** Everything but host and port, shared by every node's pool. */
  readonly connection: PoolOptions;
  readonly selector: NodeSelector;
  /** Statements every new connection runs once, before its first use (session settings). */
  readonly sessionSetup: readonly string[];
  /**
   * Reads outside a transaction wait until the node has applied every write the cluster had
   * committed when they started (wsrep_sync_wait = 1), so a read through one node sees what a
   * write through another returned.
   */
  readonly causalReads: boolean;
}

/** The text of a statement as mysql2 takes it: a string, or an options object's `sql`. */
function statementText(sql: unknown): string | undefined {
  if (typeof sql === "string") return sql;
  const text = typeof sql === "object" && sql !== null ? (sql as { sql?: unknown }).sql : undefined;
  return typeof text === "string" ? text : undefined;
}

/** A statement that only reads (what may be sent again to another node). */
function isRead(sql: unknown): boolean {
  const text = statementText(sql);
  return text !== undefined && /^\s*(select|show)\b/i.test(text) && !/\bfor\s+update\b/i.test(text);
}

const nodeIdOf = (host: DatabaseHost) => `${host.host}:${host.port}`;

/**
 * Whether a node may serve: a Galera node must be in the primary component (wsrep_ready). A node
 * that does not answer within `timeoutMs` fails with PROTOCOL_SEQUENCE_TIMEOUT (a connection failure).
 */
export async function nodeIsReady(connection: Pick<mysql.Connection, "query">, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  const [results] = await connection.query({
    sql: "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'; SHOW GLOBAL STATUS LIKE 'wsrep_ready'",
    timeout: timeoutMs,
  });
  const [on, ready] = results as unknown as Array<Array<{ Value?: unknown }>>;
  if (String(on?.[0]?.Value ?? "OFF").toUpperCase() !== "ON") return true;
  return String(ready?.[0]?.Value ?? "OFF").toUpperCase() === "ON";
}

/** `SELECT …` sent by drizzle outside a transaction, made a causal read on a Galera node. */
function causal(sql: unknown): unknown {
  const text = statementText(sql);
  if (text === undefined || !/^\s*select\b/i.test(text)) return sql;
  const wrapped = `SET STATEMENT wsrep_sync_wait = 1 FOR ${text}`;
  return typeof sql === "string" ? wrapped : { ...(sql as object), sql: wrapped };
}

/**
 * Several database servers (a Galera cluster) behind mysql2's PoolCluster, shaped like a pool.
 * A node that refuses a connection is left out by mysql2 for RESTORE_NODE_TIMEOUT_MS and new
 * connections go to the next one; a node that answers 1047 (not in the primary component), or
 * that a probe does not find ready (refused, hung: no answer within PROBE_TIMEOUT_MS, or
 * wsrep_ready OFF), is taken out until two probes in a row find it ready, and then takes its
 * place in URL order again.
 */
export class ClusterPool implements ConnectionSource {
  private readonly cluster: PoolCluster;
  /** DB_NODE_SELECTOR=round_robin: take() starts one node further each time. */
  private readonly roundRobin: boolean;
  private readonly prepared = new WeakSet<object>();
  private readonly out = new Set<string>();
  /** Ready probes in a row, per node. */
  private readonly readyProbes = new Map<string, number>();
  private turn = 0;
  private readonly setup: string;

  constructor(private readonly options: ClusterOptions) {
    this.cluster = mysql.createPoolCluster({
      canRetry: true,
      // One failed connection attempt takes a node out; it is tried again after the timeout
      // (mysql2's default of 0 would drop it for good).
      removeNodeErrorCount: 1,
      restoreNodeTimeout: RESTORE_NODE_TIMEOUT_MS,
    });
    this.roundRobin = options.selector === "round_robin";
    this.setup = options.sessionSetup.join(";\n");
    for (const host of options.hosts) this.addNode(host);
  }

  get nodeIds(): string[] {
    return this.options.hosts.map(nodeIdOf);
  }

  /** The nodes taken out (`host:port`), in URL order. */
  get nodesOut(): string[] {
    return this.nodeIds.filter((id) => this.out.has(id));
  }

  private addNode(host: DatabaseHost): void {
    this.cluster.add(nodeIdOf(host), { ...this.options.connection, host: host.host, port: host.port });
  }

  async getConnection(): Promise<PoolConnection> {
    const connection = await this.take();
    const core = connection.connection as unknown as object;
    if (this.prepared.has(core) || this.setup === "") return connection;
    try {
      await connection.query(this.setup);
    } catch (error) {
      this.noteFailure(connection, error);
      connection.destroy();
      throw error;
    }
    this.prepared.add(core);
    return connection;
  }

  /**
   * A connection of the first node that gives one, among those not taken out, asked for by id:
   * in URL order ("order"), or starting one further each time ("round_robin"). Our selection, not
   * mysql2's, which cannot leave a node out without ending its pool. A node that refuses is skipped
   * (mysql2 leaves it offline for RESTORE_NODE_TIMEOUT_MS, answering at once meanwhile).
   */
  private async take(): Promise<PoolConnection> {
    const inUse = this.nodeIds.filter((id) => !this.out.has(id));
    const start = this.roundRobin ? this.turn++ % inUse.length : 0;
    let failure: unknown = new Error("no database node to connect to");
    for (let i = 0; i < inUse.length; i++) {
      try {
        return await this.cluster.getConnection(inUse[(start + i) % inUse.length] as string);
      } catch (error) {
        if (!isConnectionFailure(error) && !NO_ONLINE_NODE.has(String((error as { code?: unknown }).code))) throw error;
        failure = error;
      }
    }
    throw failure;
  }

  // mysql2's overloaded signatures; every form is passed on as is to a connection of the cluster.
  readonly query = ((sql: string, values?: unknown) =>
    this.oneOff(isRead(sql), (connection) => connection.query(this.read(sql) as string, values as never))) as Pool["query"];

  readonly execute = ((sql: string, values?: unknown) =>
    this.oneOff(isRead(sql), (connection) => connection.execute(this.read(sql) as string, values as never))) as Pool["execute"];

  end(): Promise<void> {
    return this.cluster.end();
  }

  /**
   * A failure on this connection says its node cannot serve: a node out of the primary
   * component is taken out of the cluster until probeNodes finds it ready.
   */
  noteFailure(connection: PoolConnection, error: unknown): void {
    if (!isNotPrimary(error)) return;
    const config = (connection.connection as unknown as { config?: { host?: string; port?: number } }).config;
    const host = this.options.hosts.find((h) => h.host === config?.host && h.port === config?.port);
    if (host) this.takeOut(host);
  }

  /**
   * Leaves a node out of take() (never the last one in). Its pool is kept, not ended: ending a
   * pool whose connection is still in its handshake with a hung node throws from mysql2's
   * default callback, outside any of ours.
   */
  private takeOut(host: DatabaseHost): void {
    const id = nodeIdOf(host);
    if (this.out.has(id) || this.out.size + 1 >= this.options.hosts.length) return;
    this.out.add(id);
  }

  /**
   * Asks every node directly whether it can serve; nodes taken out come back after two ready
   * probes in a row, the others are taken out: one out of the primary component, and one that does not answer within
   * PROBE_TIMEOUT_MS (a hung host or a partition that sends no reset: its pooled connections
   * would hang every call that took one). True when any node is ready.
   */
  async probeNodes(): Promise<boolean> {
    const states = await Promise.all(this.options.hosts.map((host) => this.probe(host)));
    this.options.hosts.forEach((host, i) => {
      const id = nodeIdOf(host);
      if (states[i] !== "ready") {
        this.readyProbes.delete(id);
        this.takeOut(host);
        return;
      }
      // Back in after two ready probes in a row: a node resumed after a freeze believes itself
      // in the primary component until it notices its eviction, a second or two later.
      const ready = (this.readyProbes.get(id) ?? 0) + 1;
      this.readyProbes.set(id, ready);
      if (this.out.has(id) && ready >= READY_PROBES_TO_RETURN) this.out.delete(id);
    });
    return states.includes("ready");
  }

  private async probe(host: DatabaseHost): Promise<"ready" | "not_primary" | "unreachable"> {
    const { database: _database, ...server } = this.options.connection;
    let connection: mysql.Connection | undefined;
    try {
      connection = await mysql.createConnection({ ...server, host: host.host, port: host.port, connectTimeout: PROBE_TIMEOUT_MS });
      return (await nodeIsReady(connection)) ? "ready" : "not_primary";
    } catch (error) {
      return isConnectionFailure(error) ? "unreachable" : "not_primary";
    } finally {
      connection?.destroy();
    }
  }

  private read(sql: unknown): unknown {
    return this.options.causalReads ? causal(sql) : sql;
  }

  /**
   * One statement on a connection of the cluster. A read refused by a node out of the primary
   * component (error 1047) goes once more, to the next node (the refusing one is taken out); a
   * write does not: a node that leaves the component during an autocommit statement may have
   * committed it, and the caller decides (service_unavailable, safe to retry with its key).
   */
  private async oneOff<T>(read: boolean, work: (connection: PoolConnection) => Promise<T>): Promise<T> {
    try {
      return await this.oneOffOnce(work);
    } catch (error) {
      if (!read || !isNotPrimary(error)) throw error;
      return this.oneOffOnce(work);
    }
  }

  private async oneOffOnce<T>(work: (connection: PoolConnection) => Promise<T>): Promise<T> {
    const connection = await this.getConnection();
    try {
      const result = await work(connection);
      connection.release();
      return result;
    } catch (error) {
      this.noteFailure(connection, error);
      if (isConnectionFailure(error) || isNotPrimary(error)) connection.destroy();
      else connection.release();
      throw error;
    }
  }
}
