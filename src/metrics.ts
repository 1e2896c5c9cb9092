import { createServer, type Server } from "node:http";
import type { Pool } from "mysql2/promise";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { OverloadedLine } from "./operations/overload.js";
import type { RetryReason } from "./store/run-transaction.js";
import type { ConnectionRefusal } from "./tenancy/connection-limits.js";

/**
 * The label values of the labelled counters, each series present at 0 from the start: an alert
 * rule on a series that appears only once it first counts (`absent()`, `rate()` over a new
 * series) would otherwise not see the first refusals or retries. Records over each union, so that
 * a value added to it must be added here too.
 */
const OVERLOAD_LINES = valuesOf<OverloadedLine>({ customer: true, side_by_side: true, gate: true });
const RETRY_REASONS = valuesOf<RetryReason>({
  deadlock: true,
  lock_wait_timeout: true,
  duplicate_key: true,
  certification_failure: true,
  connection_lost: true,
  prefetch_raced: true,
});
const CONNECTION_REFUSALS = valuesOf<ConnectionRefusal>({ instance: true, address: true });

function valuesOf<T extends string>(every: Record<T, true>): T[] {
  return Object.keys(every) as T[];
}

/** Prometheus metrics of one server instance (prom-client). */
export class Metrics {
  readonly registry = new Registry();
  readonly calls = new Counter({
    name: "billing_grpc_calls_total",
    help: "gRPC calls by method and result code (ok or the error code).",
    labelNames: ["method", "code"] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: "billing_grpc_call_duration_seconds",
    help: "gRPC call latency by method.",
    labelNames: ["method"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly httpCalls = new Counter({
    name: "billing_http_requests_total",
    help: "HTTP requests by route and result code (ok or the error code).",
    labelNames: ["route", "code"] as const,
    registers: [this.registry],
  });
  readonly httpLatency = new Histogram({
    name: "billing_http_request_duration_seconds",
    help: "HTTP request latency by route.",
    labelNames: ["route"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: "billing_db_transaction_retries_total",
    help: "Database transactions run again: after a deadlock, a lock-wait timeout, a duplicate key (an idempotency race), a Galera certification failure, a connection lost before COMMIT was sent, or a hold committed while a write naming no customer read it (prefetch_raced).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly groupCommitSize = new Histogram({
    name: "billing_group_commit_size",
    help: "Calls of one customer applied in one transaction by group commit (calls that waited for one in flight).",
    buckets: [1, 2, 4, 8, 16, 32],
    registers: [this.registry],
  });
  readonly sideBySideSize = new Histogram({
    name: "billing_group_commit_side_by_side_size",
    help: "Calls of different customers applied in one transaction because the instance had every transaction busy.",
    buckets: [1, 2, 4, 8, 16, 32],
    registers: [this.registry],
  });
  readonly groupCommitFallbacks = new Counter({
    name: "billing_group_commit_fallbacks_total",
    help: "Groups whose shared transaction failed, so each call was run again alone.",
    registers: [this.registry],
  });
  readonly setAside = new Counter({
    name: "billing_group_commit_set_aside_total",
    help: "Calls set aside from a group-commit transaction because another transaction held their customer; they then ran outside the instance's places.",
    registers: [this.registry],
  });
  readonly heldWaits = new Counter({
    name: "billing_group_commit_held_waits_total",
    help: "Group-commit transactions whose bounded wait for their customers' locks ran out (another transaction held one); each ran again with the held customers' calls set aside.",
    registers: [this.registry],
  });
  readonly overloadRefusals = new Counter({
    name: "billing_overload_refusals_total",
    help: "Calls refused with rate_limit_exceeded because a line of this instance was full (customer: its queue; side_by_side; gate: writes outside group commit), not by a key's limit.",
    labelNames: ["line"] as const,
    registers: [this.registry],
  });
  readonly connectionsRefused = new Counter({
    name: "billing_connections_refused_total",
    help: "Connections closed at accept: the listener held CONNECTIONS_MAX (instance) or the address CONNECTIONS_PER_ADDRESS_MAX (address).",
    labelNames: ["transport", "reason"] as const,
    registers: [this.registry],
  });
  readonly rateLimitFailOpen = new Counter({
    name: "billing_rate_limit_fail_open_total",
    help: "Calls let through without a rate limit because Redis could not be reached.",
    registers: [this.registry],
  });

  readonly autoSettlementLateness = new Histogram({
    name: "billing_auto_settlement_lateness_seconds",
    help: "How long after its deadline this instance's sweeper settled a due hold: in a pass (pass), or behind its customer's calls, whose lock a pass never found free (in_line).",
    labelNames: ["via"] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  readonly eventsPublishLag = new Gauge({
    name: "billing_events_publish_lag",
    help: "Stamped events the NATS publisher has not sent yet, as the instance holding the publisher lease sees them; every other instance (and one without NATS_URL) shows 0: read the max over instances.",
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    for (const line of OVERLOAD_LINES) this.overloadRefusals.inc({ line }, 0);
    for (const reason of RETRY_REASONS) this.retries.inc({ reason }, 0);
    for (const transport of ["grpc", "http"] as const) {
      for (const reason of CONNECTION_REFUSALS) this.connectionsRefused.inc({ transport, reason }, 0);
    }
    for (const via of ["pass", "in_line"] as const) this.autoSettlementLateness.zero({ via });
  }

  /** Pool usage, read when scraped. */
  watchPool(pool: Pool): void {
    // mysql2 keeps these arrays on the underlying callback pool; they are not in its typings.
    const inner = pool.pool as unknown as { _allConnections?: { length: number }; _freeConnections?: { length: number } };
    new Gauge({
      name: "billing_db_pool_connections",
      help: "Database pool connections by state.",
      labelNames: ["state"] as const,
      registers: [this.registry],
      collect() {
        const all = inner._allConnections?.length ?? 0;
        const free = inner._freeConnections?.length ?? 0;
        this.set({ state: "open" }, all);
        this.set({ state: "in_use" }, all - free);
      },
    });
  }

  /** Group commit's calls waiting (behind their customer's transaction, or for one to go side by side in), read when scraped. */
  watchGroupCommit(
    waiting: () => { behindCustomer: number; sideBySide: number; transactions: number; gate: { running: number; waiting: number } },
  ): void {
    new Gauge({
      name: "billing_group_commit_waiting",
      help: "Calls waiting in group commit: behind their customer's transaction, or in line to go side by side.",
      labelNames: ["line"] as const,
      registers: [this.registry],
      collect() {
        const now = waiting();
        this.set({ line: "customer" }, now.behindCustomer);
        this.set({ line: "side_by_side" }, now.sideBySide);
        // Batch, slot, entitlement and alert writes, waiting for a place (TransactionGate).
        this.set({ line: "outside" }, now.gate.waiting);
      },
    });
    new Gauge({
      name: "billing_group_commit_transactions",
      help: "Write transactions in flight on this instance: group commit's (at most GROUP_COMMIT_TRANSACTIONS), and the others (at most DB_POOL_SIZE - GROUP_COMMIT_TRANSACTIONS - 2).",
      labelNames: ["kind"] as const,
      registers: [this.registry],
      collect() {
        const now = waiting();
        this.set({ kind: "group_commit" }, now.transactions);
        this.set({ kind: "outside" }, now.gate.running);
      },
    });
  }

  /** A cluster's nodes, 1 while in use and 0 while taken out, read when scraped. */
  watchNodes(nodes: readonly string[], nodesOut: () => readonly string[]): void {
    new Gauge({
      name: "billing_db_node_in_use",
      help: "Database nodes of DATABASE_URL: 1 in use, 0 taken out (refused, hung or outside the primary component).",
      labelNames: ["node"] as const,
      registers: [this.registry],
      collect() {
        const out = new Set(nodesOut());
        for (const node of nodes) this.set({ node }, out.has(node) ? 0 : 1);
      },
    });
  }

  /** Serves /metrics on its own port; returns the listening server. */
  async listen(host: string, port: number): Promise<Server> {
    const server = createServer((req, res) => {
      // The path alone: a scraper's query string (`?x=1`) names the same page.
      if (req.url?.split("?")[0] !== "/metrics") {
        res.writeHead(404).end();
        return;
      }
      this.registry
        .metrics()
        .then((body) => res.writeHead(200, { "content-type": this.registry.contentType }).end(body))
        .catch(() => res.writeHead(500).end());
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return server;
  }
}
