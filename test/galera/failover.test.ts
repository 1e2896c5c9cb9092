import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLedger } from "../../src/operations/verify.js";
import { openDatabase } from "../../src/store/database.js";
import { uid } from "../support/fixtures.js";
import {
  connectTo,
  errorLogOf,
  type Instance,
  Instances,
  killNode,
  type Node,
  nodeUrl,
  rejoinNode,
  uniqueDatabaseName,
  untilAnswered,
} from "./cluster.js";

const CUSTOMERS = 8;
const CALLS = 400;
const IN_FLIGHT = 32;
const KILL_AFTER = 100;

let instances: Instances;
let a: Instance;
let b: Instance;
beforeAll(async () => {
  instances = new Instances(uniqueDatabaseName("vb_failover"));
  a = await instances.start([1, 2, 3]);
  b = await instances.start([2, 3, 1]);
});
afterAll(async () => {
  await instances?.stop();
});

interface Sent {
  readonly customerId: string;
  readonly amount: bigint;
  answered: boolean;
  doneAtMs: number;
}

/** Deposits with their own keys, IN_FLIGHT at a time over both instances; `onDone` after each answer. */
async function burst(customers: readonly string[], calls: number, onDone: (done: number) => void): Promise<Sent[]> {
  const sent: Sent[] = [];
  let next = 0;
  let done = 0;
  const worker = async (instance: Instance) => {
    while (next < calls) {
      const i = next++;
      const item: Sent = {
        customerId: customers[i % customers.length] as string,
        amount: BigInt(1 + (i % 5)),
        answered: false,
        doneAtMs: 0,
      };
      sent.push(item);
      const idempotencyKey = uid("dep");
      const answer = await untilAnswered(() =>
        instance.client.call("deposit", { customerId: item.customerId, amount: item.amount, idempotencyKey }),
      );
      item.answered = answer.value !== undefined;
      item.doneAtMs = Date.now();
      onDone(++done);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, (_, w) => worker(w % 2 === 0 ? a : b)));
  return sent;
}

const totalsOf = (sent: readonly Sent[]) => {
  const totals = new Map<string, bigint>();
  for (const s of sent) totals.set(s.customerId, (totals.get(s.customerId) ?? 0n) + s.amount);
  return totals;
};

async function checksumsOn(node: Node, database: string): Promise<unknown> {
  const connection = await connectTo(node);
  try {
    await connection.query("SET SESSION wsrep_sync_wait = 1");
    const [rows] = await connection.query(
      `CHECKSUM TABLE \`${database}\`.accounts, \`${database}\`.customers, \`${database}\`.transactions, \`${database}\`.ledger_entries`,
    );
    return (rows as Array<{ Checksum: unknown }>).map((r) => r.Checksum);
  } finally {
    await connection.end();
  }
}

describe("a node killed in the middle of a burst", () => {
  it("the instances fail over, every acknowledged write is there once, the ledger verifies on the survivors", async () => {
    const customers = Array.from({ length: CUSTOMERS }, () => uid("fail"));
    let killing: Promise<void> | null = null;
    const sent = await burst(customers, CALLS, (done) => {
      if (done === KILL_AFTER) killing = killNode(1);
    });
    await killing;
    expect(sent.filter((s) => !s.answered)).toEqual([]);
    const times = sent.map((s) => s.doneAtMs).sort((x, y) => x - y);
    const gap = times.slice(1).reduce((max, t, i) => Math.max(max, t - (times[i] as number)), 0);
    console.log(`failover: longest gap between answers ${gap} ms`);

    for (const [customerId, total] of totalsOf(sent)) {
      for (const instance of [a, b]) {
        const c = await instance.client.call("getCustomer", { customerId });
        expect(c.balance?.total).toBe(total);
      }
    }
    for (const node of [2, 3] as const) {
      const survivor = await openDatabase(nodeUrl(node, instances.database), { migrate: false, poolSize: 2 });
      try {
        expect((await verifyLedger(survivor.db)).problems).toEqual([]);
      } finally {
        await survivor.close();
      }
    }
    expect(await a.app.database.probe()).toEqual({ ok: true });
  });

  it("rejoins by IST, never as a new cluster, and agrees with the others", async () => {
    const logBefore = errorLogOf(1).length;
    await rejoinNode(1);
    const log = errorLogOf(1).slice(logBefore);
    expect(log).toContain("IST received");
    expect(log).not.toContain("wsrep-new-cluster");
    const connection = await connectTo(1);
    try {
      const [size] = await connection.query("SHOW STATUS LIKE 'wsrep_cluster_size'");
      expect(size).toEqual([{ Variable_name: "wsrep_cluster_size", Value: "3" }]);
    } finally {
      await connection.end();
    }
    // Both instances keep answering with node 1 back, and every node holds the same rows.
    const customers = Array.from({ length: 4 }, () => uid("back"));
    const sent = await burst(customers, 40, () => undefined);
    expect(sent.filter((s) => !s.answered)).toEqual([]);
    const reference = await checksumsOn(2, instances.database);
    expect(await checksumsOn(1, instances.database)).toEqual(reference);
    expect(await checksumsOn(3, instances.database)).toEqual(reference);
  });
});
