import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BillingContext } from "../../src/operations/context.js";
import { getCustomer } from "../../src/operations/get-customer.js";
import { deduct, type SpendInput } from "../../src/operations/spend.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { type Database, openDatabase } from "../../src/store/database.js";
import { type RetryReason, rowsOf, runTransaction } from "../../src/store/run-transaction.js";
import { driverError } from "../../src/store/sql-errors.js";
import { sql } from "../../src/store/sql.js";
import { uid } from "../support/fixtures.js";
import {
  clusterUrl,
  codeOf,
  connectTo,
  type Instance,
  Instances,
  NODES,
  type Node,
  nodeUrl,
  portOf,
  uniqueDatabaseName,
} from "./cluster.js";

/**
 * A node cut off from the others (gmcast.isolate=1) but still running: it leaves the primary
 * component and answers 1047 (ER_UNKNOWN_COM_ERROR, "WSREP has not yet prepared node for
 * application use") to what touches data. Node 1 is named first, with the order selector, so
 * the first statement after it left goes to it for certain.
 */
const ISOLATED: Node = 1;
const ISOLATED_ID = `127.0.0.1:${portOf(ISOLATED)}`;
const NOT_PRIMARY = 1047;
/** Generous: eviction takes about evs.suspect_timeout (5 s in scripts/galera.sh), a return by IST a few seconds. */
const CLUSTER_CHANGE_MS = 120_000;
/** From gmcast.isolate=1 to a node cut off from its group (reads wait), well before its eviction at evs.suspect_timeout (5 s). */
const CUT_OFF_SETTLE_MS = 1_000;

const CUSTOMERS = 4;
const DEPOSIT = 1000n;
const DEDUCTS = 200;
/** One GetCustomer after every two Deducts. */
const READS = DEDUCTS / 2;
const IN_FLIGHT = 16;

let instances: Instances;
let service: Instance;
beforeAll(async () => {
  // scripts/galera.sh up waited for this; a node left isolated by an earlier run would not be.
  expect(await Promise.all(NODES.map(wsrepOf))).toEqual(NODES.map(() => IN_USE(3)));
  instances = new Instances(uniqueDatabaseName("rev_np"));
  // No health probe after the first one (at start, before any isolation): only a 1047 answer
  // (the pool's noteFailure) can take node 1 out; the tests probe themselves to bring it back.
  service = await instances.start([1, 2, 3], { HEALTH_CHECK_INTERVAL_MS: "600000" });
});
afterAll(async () => {
  await instances?.stop();
});

interface Wsrep {
  readonly state: string;
  readonly status: string;
  readonly ready: string;
  readonly size: string;
}
const IN_USE = (size: number): Wsrep => ({ state: "Synced", status: "Primary", ready: "ON", size: String(size) });

async function wsrepOf(node: Node): Promise<Wsrep> {
  const connection = await connectTo(node);
  try {
    const [rows] = await connection.query(
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state_comment', 'wsrep_cluster_status', 'wsrep_ready', 'wsrep_cluster_size')",
    );
    const value = new Map((rows as Array<{ Variable_name: string; Value: string }>).map((r) => [r.Variable_name, r.Value]));
    return {
      state: value.get("wsrep_local_state_comment") ?? "",
      status: value.get("wsrep_cluster_status") ?? "",
      ready: value.get("wsrep_ready") ?? "",
      size: value.get("wsrep_cluster_size") ?? "",
    };
  } finally {
    await connection.end();
  }
}

async function setIsolated(node: Node, isolated: boolean): Promise<void> {
  const connection = await connectTo(node);
  try {
    await connection.query(`SET GLOBAL wsrep_provider_options = 'gmcast.isolate=${isolated ? 1 : 0}'`);
  } finally {
    await connection.end();
  }
}

/** What a direct connection to the node gets for each statement: "ok" or the error's errno. */
async function answersOf(node: Node, statements: readonly string[]): Promise<Record<string, number | "ok">> {
  const connection = await connectTo(node);
  try {
    const answers: Record<string, number | "ok"> = {};
    for (const statement of statements) {
      answers[statement] = await connection.query(statement).then(
        () => "ok" as const,
        (error: unknown) => driverError(error)?.errno ?? -1,
      );
    }
    return answers;
  } finally {
    connection.destroy();
  }
}

/** Lets node 1 back in and waits until the three nodes are Synced in one primary component. */
async function letBackIn(): Promise<void> {
  await setIsolated(ISOLATED, false);
  await expect
    .poll(() => Promise.all(NODES.map(wsrepOf)), { timeout: CLUSTER_CHANGE_MS, interval: 200 })
    .toEqual(NODES.map(() => IN_USE(3)));
}

/**
 * Runs `body` while node 1 is out of the primary component but running: cut off, seen non-Primary
 * by itself and evicted by the two others, refusing with 1047. Whatever happens, it is let back in
 * and the three nodes are Synced in one primary component again before this returns.
 */
async function whileIsolated<T>(database: string, body: () => Promise<T>): Promise<T> {
  const others = NODES.filter((n) => n !== ISOLATED);
  try {
    await setIsolated(ISOLATED, true);
    await expect
      .poll(() => Promise.all([ISOLATED, ...others].map(wsrepOf)), { timeout: CLUSTER_CHANGE_MS, interval: 100 })
      .toMatchObject([{ status: "non-Primary", ready: "OFF" }, ...others.map(() => IN_USE(2))]);
    // MariaDB lets a SELECT without tables through (SELECT 1 answers); anything reading or
    // writing data, and BEGIN, gets 1047.
    const table = `SELECT COUNT(*) FROM \`${database}\`.customers`;
    expect(await answersOf(ISOLATED, ["SELECT 1", table, "BEGIN"])).toEqual({ "SELECT 1": "ok", [table]: NOT_PRIMARY, BEGIN: NOT_PRIMARY });
    return await body();
  } finally {
    await letBackIn();
  }
}

/**
 * What `send` answers when sent the moment node 1 is cut off: the others evict it only after
 * evs.suspect_timeout, and until then it answers ready while a causal read on it waits for a
 * cluster it cannot reach. Node 1 is let back in before this returns.
 */
async function sentAsCutOff<T>(send: () => Promise<T>): Promise<T> {
  try {
    await setIsolated(ISOLATED, true);
    // Its group link takes a moment to go: a read sent at once still gets through (seen 36 ms
    // after). One second later it is cut off, and the eviction is 4 s away.
    await new Promise((resolve) => setTimeout(resolve, CUT_OFF_SETTLE_MS));
    return await send();
  } finally {
    await letBackIn();
  }
}

/** Probes as the health check does until every node is in use again (two ready probes, 2 s apart). */
async function untilAllInUse(database: Pick<Database, "probe" | "nodesOut">): Promise<void> {
  await expect
    .poll(
      async () => {
        await database.probe();
        return database.nodesOut();
      },
      { timeout: CLUSTER_CHANGE_MS, interval: 500 },
    )
    .toEqual([]);
}

/** The port of the node serving a read outside a transaction (a read of a table: 1047 on a node out). */
async function portOfRead(database: Database): Promise<number> {
  const [rows] = await database.pool.query("SELECT @@port AS port, COUNT(*) AS n FROM customers");
  return Number((rows as Array<{ port: unknown }>)[0]?.port);
}

/** A transaction inserting a row with its node's port: how many times it ran, why it ran again, where it committed. */
async function markingTransaction(database: Database): Promise<{ attempts: number; reasons: RetryReason[]; port: number }> {
  const reasons: RetryReason[] = [];
  let attempts = 0;
  const id = uid("mark");
  const port = await runTransaction(
    database,
    async (tx) => {
      attempts++;
      const [rows] = await tx.run([sql`SELECT @@port AS port`]);
      await tx.run([sql`INSERT INTO np_marks (id, port) VALUES (${id}, @@port)`], { commit: true });
      return Number(rowsOf(rows)[0]?.port);
    },
    { onRetry: (reason) => reasons.push(reason) },
  );
  const [stored] = await database.pool.query("SELECT port FROM np_marks WHERE id = ?", [id]);
  expect((stored as Array<{ port: unknown }>).map((r) => Number(r.port))).toEqual([port]);
  return { attempts, reasons, port };
}

/** billing_db_node_in_use of the service, by node. */
async function nodesInUseGauge(instance: Instance): Promise<Record<string, number>> {
  const metric = instance.app.metrics.registry.getSingleMetric("billing_db_node_in_use");
  if (!metric) throw new Error("no billing_db_node_in_use metric");
  const { values } = await metric.get();
  return Object.fromEntries(values.map((v) => [String(v.labels.node), v.value]));
}

const gaugeWithOut = (out: readonly string[]) =>
  Object.fromEntries(NODES.map((n) => `127.0.0.1:${portOf(n)}`).map((id) => [id, out.includes(id) ? 0 : 1]));

describe("a node outside the primary component (isolated, not killed)", () => {
  it("the service's pool: a read, a transaction, a GetCustomer and a Deduct sent to it run on node 2 instead; it is out until it rejoins", async () => {
    const url = clusterUrl([1, 2, 3], instances.database);
    // One pool per path, each with a connection to node 1 already open (and nothing else using
    // it): the first statement of each after the isolation goes to node 1, first in URL order.
    const open = () => openDatabase(url, { migrate: false, poolSize: 2 });
    const reads = await open();
    const writes = await open();
    const customerReads = await open();
    const deductWrites = await open();
    try {
      const customerId = uid("np-op");
      await service.client.call("deposit", { customerId, amount: DEPOSIT });
      const [projects] = await writes.pool.query("SELECT id FROM projects");
      expect(projects).toHaveLength(1);
      const projectId = BigInt(String((projects as Array<{ id: unknown }>)[0]?.id));
      const query = { projectId, customerId, includeInactive: false, asOfMs: null };
      const spend = (amount: bigint): SpendInput => ({
        projectId,
        apiKeyId: null,
        customerId,
        transactionId: uid("np-deduct"),
        amount,
        creditTypes: [],
        businessType: 0,
        description: "",
        metadata: {},
      });
      const deductRetries: RetryReason[] = [];
      const reading: BillingContext = { database: customerReads, now: instances.clock.now };
      const deducting: BillingContext = {
        database: deductWrites,
        now: instances.clock.now,
        retries: { onRetry: (r) => deductRetries.push(r) },
      };
      const balance = (used: bigint) => ({ total: DEPOSIT, used, frozen: 0n, available: DEPOSIT - used });

      await writes.pool.query("CREATE TABLE np_marks (id VARCHAR(64) PRIMARY KEY, port INT NOT NULL)");
      expect(await portOfRead(reads)).toBe(portOf(1));
      expect(await markingTransaction(writes)).toEqual({ attempts: 1, reasons: [], port: portOf(1) });
      expect((await deduct(deducting, spend(1n))).balance).toEqual(balance(1n));
      expect((await getCustomer(reading, query)).balance).toEqual(balance(1n));
      expect(deductRetries).toEqual([]);

      await whileIsolated(instances.database, async () => {
        const pools = [reads, writes, customerReads, deductWrites];
        expect(pools.map((p) => p.nodesOut())).toEqual([[], [], [], []]);
        // The read is refused by node 1 (1047), which is taken out, and sent once more: to node 2.
        expect(await portOfRead(reads)).toBe(portOf(2));
        expect(reads.nodesOut()).toEqual([ISOLATED_ID]);
        // BEGIN is refused by node 1: nothing ran, the transaction runs again at once on node 2.
        expect(await markingTransaction(writes)).toEqual({ attempts: 2, reasons: ["connection_lost"], port: portOf(2) });
        expect(writes.nodesOut()).toEqual([ISOLATED_ID]);
        // The service's own operations over the same paths: a Deduct (a transaction), a GetCustomer (reads).
        expect((await deduct(deducting, spend(2n))).balance).toEqual(balance(3n));
        expect(deductRetries).toEqual(["connection_lost"]);
        expect((await getCustomer(reading, query)).balance).toEqual(balance(3n));
        expect(pools.map((p) => p.nodesOut())).toEqual(pools.map(() => [ISOLATED_ID]));
        // Taken out: later statements go to node 2 directly.
        expect(await portOfRead(reads)).toBe(portOf(2));
        expect(await markingTransaction(writes)).toEqual({ attempts: 1, reasons: [], port: portOf(2) });
        // Probes keep it out while it is not ready.
        expect(await reads.probe()).toEqual({ ok: true });
        expect(reads.nodesOut()).toEqual([ISOLATED_ID]);
      });

      // Synced again: two ready probes in a row bring it back, first in URL order.
      for (const database of [reads, writes]) await untilAllInUse(database);
      expect(await portOfRead(reads)).toBe(portOf(1));
      expect(await markingTransaction(writes)).toEqual({ attempts: 1, reasons: [], port: portOf(1) });
    } finally {
      await Promise.all([reads, writes, customerReads, deductWrites].map((database) => database.close()));
    }
  });

  it("a read sent as it is cut off, still answering ready, times out in its causal wait (1205) and is answered by another node", async () => {
    const reads = await openDatabase(clusterUrl([1, 2, 3], instances.database), { migrate: false, poolSize: 2 });
    try {
      expect(await portOfRead(reads)).toBe(portOf(1));
      const answered = await sentAsCutOff(async () => ({ port: await portOfRead(reads), out: reads.nodesOut() }));
      // Not refused with 1047 (that would have taken node 1 out): its wait timed out, and the read went once more, elsewhere.
      expect(answered).toEqual({ port: portOf(2), out: [] });
    } finally {
      await reads.close();
    }
  });

  it(`the service: ${DEDUCTS} Deducts and ${READS} GetCustomers while it is out all succeed, balances exact, the ledger verifies after it rejoins`, async () => {
    const { client } = service;
    const customers = Array.from({ length: CUSTOMERS }, () => uid("np"));
    for (const customerId of customers) await client.call("deposit", { customerId, amount: DEPOSIT });
    const deducts = Array.from({ length: DEDUCTS }, (_, i) => ({
      customerId: customers[i % CUSTOMERS] as string,
      transactionId: uid("deduct"),
      amount: BigInt(1 + (i % 3)),
    }));
    const used = new Map(customers.map((c) => [c, deducts.filter((d) => d.customerId === c).reduce((sum, d) => sum + d.amount, 0n)]));
    const expectedBalances = () =>
      customers.map((c) => ({ total: DEPOSIT, used: used.get(c), frozen: 0n, available: DEPOSIT - (used.get(c) ?? 0n) }));
    const balances = () => Promise.all(customers.map(async (customerId) => (await client.call("getCustomer", { customerId })).balance));
    // Its background work (the event stamper) met node 1 during the first test's isolation: back in first.
    await untilAllInUse(service.app.database);
    expect(await portOfRead(service.app.database)).toBe(portOf(1));

    await whileIsolated(instances.database, async () => {
      // Each call sent once (no retry by the test), one GetCustomer after every two Deducts: every one must be answered ok.
      const jobs: Array<() => Promise<string>> = [];
      deducts.forEach((d, i) => {
        jobs.push(() => client.call("deduct", d).then(() => "deduct"));
        const customerId = customers[i % CUSTOMERS] as string;
        if (i % 2 === 1) jobs.push(() => client.call("getCustomer", { customerId }).then(() => "getCustomer"));
      });
      const ok: string[] = [];
      const errors: string[] = [];
      let next = 0;
      const worker = async () => {
        while (next < jobs.length) {
          const job = jobs[next++] as () => Promise<string>;
          await job().then(
            (method) => ok.push(method),
            (error: unknown) => errors.push(codeOf(error)),
          );
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
      const count = (list: readonly string[], method: string) => list.filter((m) => m === method).length;
      expect({ errors, deduct: count(ok, "deduct"), getCustomer: count(ok, "getCustomer") }).toEqual({
        errors: [],
        deduct: DEDUCTS,
        getCustomer: READS,
      });
      expect(await balances()).toEqual(expectedBalances());
      // Node 1 was taken out by a 1047 answer (no health probe ran), and the metrics say so. Which
      // statement met it first (a call's, or the event stamper's polling read) is not fixed here:
      // the first test sends each path to node 1 for certain.
      expect(service.app.database.nodesOut()).toEqual([ISOLATED_ID]);
      expect(await nodesInUseGauge(service)).toEqual(gaugeWithOut([ISOLATED_ID]));
      expect((await verifyLedger(service.app.database.db)).problems).toEqual([]);
    });

    await untilAllInUse(service.app.database);
    expect(await nodesInUseGauge(service)).toEqual(gaugeWithOut([]));
    // Node 1 serves the service again and holds every write it missed while out.
    expect(await portOfRead(service.app.database)).toBe(portOf(1));
    expect(await balances()).toEqual(expectedBalances());
    const rejoined = await openDatabase(nodeUrl(ISOLATED, instances.database), { migrate: false, poolSize: 2 });
    try {
      expect((await verifyLedger(rejoined.db)).problems).toEqual([]);
    } finally {
      await rejoined.close();
    }
  });
});
