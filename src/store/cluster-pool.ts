import { setMaxListeners } from "node:events";
import mysql, { type Pool, type PoolCluster, type PoolConnection, type PoolOptions } from "mysql2/promise";
import type { DatabaseHost } from "./database-url.js";
import { isConnectionFailure, isNotPrimary, retryableConflictOf } from "./sql-errors.js";

/** Which node a new connection comes from: the first one up in URL order, or each in turn. */
export type NodeSelector = "order" | "round_robin";

/** A failed node is left out for this long before a connection is tried on it again. */
export const RESTORE_NODE_TIMEOUT_MS = 5_000;
/** How long a probe waits for a node to connect and answer. */
export const PROBE_TIMEOUT_MS = 2_000;
/** Ready probes in a row before a node taken out is used again. */
const READY_PROBES_TO_RETURN = 2;
/** mysql2's answers when a pattern names no node, or only offline ones. */
const NO_ONLINE_NODE: ReadonlySet<string> = new Set(["POOL_NOEXIST", "POOL_NONEONLINE"]);

/** What a pool is asked for by drizzle and by runTransaction: connections, and one-off queries. */
export type ConnectionSource = Pick<Pool, "getConnection" | "query" | "execute" | "end"> & {
  /** Told of a connection's failure, so a node that cannot serve is left out (clusters only). */
  noteFailure?(connection: PoolConnection, error: unknown): void;
  /** Aborts when the node this connection came from is found hung and taken out (clusters only). */
  lostSignal?(connection: PoolConnection): AbortSignal | undefined;
};

/**
 * What a statement waiting on a connection of a node found hung fails with: a lost connection,
 * as if it had timed out, but as soon as a probe has taken the node out.
 */
export class NodeHungError extends Error {
  readonly code = "PROTOCOL_CONNECTION_LOST";
  readonly fatal = true;

  constructor(readonly node: string) {
    super("the database node stopped answering and was taken out");
  }
}

/** `work`, failed with the signal's reason as soon as it aborts (its own outcome is then ignored). */
export function unlessLost<T>(lost: AbortSignal | undefined, work: Promise<T>): Promise<T> {
  if (lost === undefined) return work;
  if (lost.aborted) return Promise.reject(lost.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onLost = () => reject(lost.reason as Error);
    lost.addEventListener("abort", onLost, { once: true });
    work.then(
      (value) => {
        lost.removeEventListener("abort", onLost);
        resolve(value);
      },
      (error: unknown) => {
        lost.removeEventListener("abort", onLost);
        reject(error);
      },
    );
  });
}

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
  /**
   * How long one statement outside a transaction may take before its connection counts as lost
   * (PROTOCOL_SEQUENCE_TIMEOUT), as a transaction's round trip does: a hung node answers nothing, ever.
   */
  readonly statementTimeoutMs?: number;
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

/** What a probe found of a node, with the primary component's configuration it is in (Galera only). */
interface Probed {
  readonly state: "ready" | "not_primary" | "unreachable";
  readonly configuration: number | null;
  /** Why it is not ready (a failure of the connection or of the readiness query); null when it is, or when it said it is not. */
  readonly error: unknown;
}

/** What a probe of the database found: a server that may serve, or the failure that says why none may. */
export type ProbeOutcome = { readonly ok: true } | { readonly ok: false; readonly error: unknown };

/**
 * Whether a node may serve (a Galera node must be in the primary component: wsrep_ready), and
 * the number of the primary component's configuration it believes it is in
 * (wsrep_cluster_conf_id). A node that does not answer within `timeoutMs` fails with
 * PROTOCOL_SEQUENCE_TIMEOUT (a connection failure).
 */
async function nodeReadiness(
  connection: Pick<mysql.Connection, "query">,
  timeoutMs: number,
): Promise<{ ready: boolean; configuration: number | null }> {
  const [results] = await connection.query({
    sql: "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'; SHOW GLOBAL STATUS LIKE 'wsrep_ready'; SHOW GLOBAL STATUS LIKE 'wsrep_cluster_conf_id'",
    timeout: timeoutMs,
  });
  const [on, ready, conf] = results as unknown as Array<Array<{ Value?: unknown }>>;
  if (String(on?.[0]?.Value ?? "OFF").toUpperCase() !== "ON") return { ready: true, configuration: null };
  const configuration = Number(conf?.[0]?.Value);
  return {
    ready: String(ready?.[0]?.Value ?? "OFF").toUpperCase() === "ON",
    configuration: Number.isSafeInteger(configuration) ? configuration : null,
  };
}

/**
 * A node that answers ready in an older configuration than another ready node was evicted while
 * it could not tell (frozen, cut off) and has not noticed yet: it is not ready.
 */
export function outdatedNotReady(probed: readonly Pick<Probed, "state" | "configuration">[]): Probed["state"][] {
  const newest = Math.max(...probed.map((p) => (p.state === "ready" && p.configuration !== null ? p.configuration : -1)));
  return probed.map((p) => (p.state === "ready" && p.configuration !== null && p.configuration < newest ? "not_primary" : p.state));
}

/** `SELECT …` sent by drizzle outside a transaction, made a causal read on a Galera node. */
function causal(sql: unknown): unknown {
  const text = statementText(sql);
  if (text === undefined || !/^\s*select\b/i.test(text)) return sql;
  const wrapped = `SET STATEMENT wsrep_sync_wait = 1 FOR ${text}`;
  return typeof sql === "string" ? wrapped : { ...(sql as object), sql: wrapped };
}

/**
 * One statement outside a transaction on a pooled connection: released after it, destroyed after
 * a connection failure (a statement that timed out stays queued on its connection, and mysql2's
 * own pool.query would release it so), failed at once when `lost` aborts.
 */
export async function oneStatement<T>(
  connection: PoolConnection,
  work: (connection: PoolConnection) => Promise<T>,
  lost?: AbortSignal,
  noteFailure?: (error: unknown) => void,
): Promise<T> {
  try {
    const result = await unlessLost(lost, work(connection));
    connection.release();
    return result;
  } catch (error) {
    noteFailure?.(error);
    if (isConnectionFailure(error) || isNotPrimary(error)) connection.destroy();
    else connection.release();
    throw error;
  }
}

/** The statement in mysql2's options form with `timeoutMs`, unless it carries a timeout of its own. */
export function timed(sql: unknown, timeoutMs: number | undefined): unknown {
  if (timeoutMs === undefined) return sql;
  if (typeof sql === "string") return { sql, timeout: timeoutMs };
  if (typeof sql !== "object" || sql === null || (sql as { timeout?: unknown }).timeout !== undefined) return sql;
  return { ...(sql as object), timeout: timeoutMs };
}

/**
 * Several database servers (a Galera cluster) behind mysql2's PoolCluster, shaped like a pool.
 * A node that refuses a connection is left out by mysql2 for RESTORE_NODE_TIMEOUT_MS and new
 * connections go to the next one; a node that answers 1047 (not in the primary component), or
 * that a probe does not find ready (refused, hung: no answer within PROBE_TIMEOUT_MS, or
 * wsrep_ready OFF, or ready in an older configuration than another node), is taken out until two
 * probes in a row, PROBE_TIMEOUT_MS apart at least, find it ready, and then takes its place in URL
 * order again. What waits on a node taken out as hung fails at once (abandon).
 */
export class ClusterPool implements ConnectionSource {
  private readonly cluster: PoolCluster;
  /** DB_NODE_SELECTOR=round_robin: take() starts one node further each time. */
  private readonly roundRobin: boolean;
  private readonly prepared = new WeakSet<object>();
  private readonly out = new Set<string>();
  /** Ready probes in a row, per node: how many, and when the first of them started. */
  private readonly readyProbes = new Map<string, { count: number; sinceMs: number }>();
  /** The node each connection handed out came from (by mysql2's core connection). */
  private readonly nodeOfConnection = new WeakMap<object, string>();
  /** Per node, what its connections' statements give up on when a probe finds it hung. */
  private readonly lost = new Map<string, AbortController>();
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

  /** A connection of the first node in use (`avoid`, a node id, only when no other is in use). */
  async getConnection(avoid?: string): Promise<PoolConnection> {
    const connection = await this.take(avoid);
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
  private async take(avoid?: string): Promise<PoolConnection> {
    const ready = this.nodeIds.filter((id) => !this.out.has(id));
    const others = ready.filter((id) => id !== avoid);
    const inUse = others.length > 0 ? others : ready;
    const start = this.roundRobin ? this.turn++ % inUse.length : 0;
    let failure: unknown = new Error("no database node to connect to");
    for (let i = 0; i < inUse.length; i++) {
      try {
        const id = inUse[(start + i) % inUse.length] as string;
        const connection = await this.cluster.getConnection(id);
        this.nodeOfConnection.set(connection.connection as unknown as object, id);
        return connection;
      } catch (error) {
        if (!isConnectionFailure(error) && !NO_ONLINE_NODE.has(String((error as { code?: unknown }).code))) throw error;
        failure = error;
      }
    }
    throw failure;
  }

  // mysql2's overloaded signatures; every form is passed on as is to a connection of the cluster.
  readonly query = ((sql: string, values?: unknown) =>
    this.oneOff(isRead(sql), (connection) => connection.query(this.statement(sql) as string, values as never))) as Pool["query"];

  readonly execute = ((sql: string, values?: unknown) =>
    this.oneOff(isRead(sql), (connection) => connection.execute(this.statement(sql) as string, values as never))) as Pool["execute"];

  /** The node a connection handed out by take() came from. */
  private nodeOf(connection: PoolConnection): string | undefined {
    return this.nodeOfConnection.get(connection.connection as unknown as object);
  }

  lostSignal(connection: PoolConnection): AbortSignal | undefined {
    const id = this.nodeOf(connection);
    return id === undefined ? undefined : this.lostControllerOf(id).signal;
  }

  private lostControllerOf(id: string): AbortController {
    let controller = this.lost.get(id);
    if (!controller) {
      controller = new AbortController();
      // Every statement in flight on the node listens: as many as the pool has connections.
      setMaxListeners(0, controller.signal);
      this.lost.set(id, controller);
    }
    return controller;
  }

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
    // Refused between two probes: it needs two ready probes in a row again.
    this.readyProbes.delete(id);
    if (this.out.has(id) || this.out.size + 1 >= this.options.hosts.length) return;
    this.out.add(id);
  }

  /**
   * Fails every statement waiting on the node's connections (NodeHungError): a transaction that
   * had not sent its COMMIT runs again on the next node, a read is sent again, at once instead of
   * after the statement timeout. Only for a node taken out, so never the last one in use.
   */
  private abandon(id: string): void {
    const controller = this.lost.get(id);
    if (!controller || !this.out.has(id)) return;
    this.lost.delete(id);
    controller.abort(new NodeHungError(id));
  }

  /**
   * Asks every node directly whether it can serve; nodes taken out come back after two ready
   * probes in a row, the others are taken out: one out of the primary component, and one that does not answer within
   * PROBE_TIMEOUT_MS (a hung host or a partition that sends no reset: its pooled connections
   * would hang every call that took one). Ok when any node is ready; else each node's state, and
   * the first failure as the cause.
   */
  async probeNodes(): Promise<ProbeOutcome> {
    const startedMs = Date.now();
    const probed = await Promise.all(this.options.hosts.map((host) => this.probe(host)));
    const states = outdatedNotReady(probed);
    this.options.hosts.forEach((host, i) => {
      const id = nodeIdOf(host);
      if (states[i] !== "ready") {
        this.takeOut(host);
        if (states[i] === "unreachable") this.abandon(id);
        return;
      }
      // Back in after two ready probes in a row, started PROBE_TIMEOUT_MS apart at least: a probe
      // sent while the node was frozen is answered the moment it resumes, and the next one may
      // follow within the second or two the node takes to notice it was evicted.
      const previous = this.readyProbes.get(id);
      const ready = { count: (previous?.count ?? 0) + 1, sinceMs: previous?.sinceMs ?? startedMs };
      this.readyProbes.set(id, ready);
      const settled = ready.count >= READY_PROBES_TO_RETURN && startedMs - ready.sinceMs >= PROBE_TIMEOUT_MS;
      if (this.out.has(id) && settled) this.out.delete(id);
    });
    if (states.includes("ready")) return { ok: true };
    const said = this.options.hosts.map((host, i) => `${nodeIdOf(host)} ${states[i] === "unreachable" ? "unreachable" : "not ready"}`);
    const cause = probed.find((p) => p.error !== null)?.error;
    return { ok: false, error: new Error(`no node may serve: ${said.join(", ")}`, cause === undefined ? {} : { cause }) };
  }

  private async probe(host: DatabaseHost): Promise<Probed> {
    const { database: _database, ...server } = this.options.connection;
    let connection: mysql.Connection | undefined;
    try {
      connection = await mysql.createConnection({ ...server, host: host.host, port: host.port, connectTimeout: PROBE_TIMEOUT_MS });
      const { ready, configuration } = await nodeReadiness(connection, PROBE_TIMEOUT_MS);
      return { state: ready ? "ready" : "not_primary", configuration, error: null };
    } catch (error) {
      return { state: isConnectionFailure(error) ? "unreachable" : "not_primary", configuration: null, error };
    } finally {
      connection?.destroy();
    }
  }

  /** A statement as sent outside a transaction: causal on Galera, with the statement timeout. */
  private statement(sql: unknown): unknown {
    return timed(this.options.causalReads ? causal(sql) : sql, this.options.statementTimeoutMs);
  }

  /**
   * One statement on a connection of the cluster. A read that its node could not serve goes once
   * more, to another node: refused by a node out of the primary component (error 1047; the node is
   * taken out), its connection lost, or its causal wait timed out (1205: a read outside a
   * transaction takes no row lock, so only the wait for its node to catch up can time out, as it
   * does on a node being cut off from the others, which still answers ready until it is evicted
   * about 5 s later). A write does not: a node that leaves the component during an autocommit
   * statement may have committed it, and the caller decides (service_unavailable, safe to retry
   * with its key).
   */
  private async oneOff<T>(read: boolean, work: (connection: PoolConnection) => Promise<T>): Promise<T> {
    const connection = await this.getConnection();
    try {
      return await this.onConnection(connection, work);
    } catch (error) {
      if (!read || !(isNotPrimary(error) || isConnectionFailure(error) || retryableConflictOf(error) === "lock_wait_timeout")) throw error;
      return this.onConnection(await this.getConnection(this.nodeOf(connection)), work);
    }
  }

  private onConnection<T>(connection: PoolConnection, work: (connection: PoolConnection) => Promise<T>): Promise<T> {
    return oneStatement(connection, work, this.lostSignal(connection), (error) => this.noteFailure(connection, error));
  }
}
