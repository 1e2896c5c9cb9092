import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordExpiries } from "../../src/operations/expiry.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { SECOND, ts, uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { slotClientsFor } from "../support/slot-clients.js";

// Each case tampers with one thing the sums per account and per transaction cannot see (found by
// an outside review that corrupted a copy of a real dataset 59 ways), checks verify's exact lines,
// puts it back and checks verify is clean again.

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

const problems = async () => (await verifyLedger(s.app.database.db)).problems;
const sql = async (statement: string, values: unknown[] = []) => (await s.app.database.pool.query<RowDataPacket[]>(statement, values))[0];

async function charge(kind: "deduct" | "freeze", amount = 40n) {
  const customerId = uid("cust");
  const d = await s.client.call("deposit", { customerId, amount: 100n, idempotencyKey: uid("dep") });
  const transactionId = uid("tx");
  await s.client.call(kind, { customerId, transactionId, amount });
  const [t] = await sql("SELECT id, project_id FROM transactions WHERE transaction_id = ?", [transactionId]);
  const tx = `transaction ${transactionId} (project ${t?.project_id})`;
  return { customerId, transactionId, pk: String(t?.id), tx, accountId: d.account?.id ?? "", projectId: String(t?.project_id) };
}

/** Runs `change`, expects exactly `lines`, runs `undo`, expects a clean ledger. */
async function tampered(change: () => Promise<unknown>, lines: string[], undo: () => Promise<unknown>) {
  expect(await problems()).toEqual([]);
  await change();
  try {
    expect(await problems()).toEqual(lines);
  } finally {
    await undo();
  }
  expect(await problems()).toEqual([]);
}

describe("verify: transactions against their entries", () => {
  it("a refunded_amount its REFUND entries do not make", async () => {
    const c = await charge("deduct");
    await s.client.call("refund", { transactionId: c.transactionId, refundId: uid("refund"), amount: 15n });
    await tampered(
      () => sql("UPDATE transactions SET refunded_amount = 0 WHERE id = ?", [c.pk]),
      [`${c.tx}: ledger refund is 15, expected 0`],
      () => sql("UPDATE transactions SET refunded_amount = 15 WHERE id = ?", [c.pk]),
    );
  });

  it("a status its kind cannot have", async () => {
    const c = await charge("freeze");
    await tampered(
      () => sql("UPDATE transactions SET status = 'DEDUCTED' WHERE id = ?", [c.pk]),
      [`${c.tx}: status DEDUCTED for kind FREEZE`],
      () => sql("UPDATE transactions SET status = 'FROZEN' WHERE id = ?", [c.pk]),
    );
    await tampered(
      () => sql("UPDATE transactions SET kind = 'DEDUCT', status = 'DEDUCTED' WHERE id = ?", [c.pk]),
      [`${c.tx}: ledger deduct is 0, expected 40`, `${c.tx}: ledger freeze is 40, expected 0`],
      () => sql("UPDATE transactions SET kind = 'FREEZE', status = 'FROZEN' WHERE id = ?", [c.pk]),
    );
  });

  it("a settled hold whose status is not the settlement its stored outcome answered", async () => {
    const unfrozen = await charge("freeze");
    await s.client.call("unfreeze", { transactionId: unfrozen.transactionId });
    // A Consume of 0 and an Unfreeze move the same amounts: only the stored answer tells them apart.
    await tampered(
      () => sql("UPDATE transactions SET status = 'CONSUMED' WHERE id = ?", [unfrozen.pk]),
      [`${unfrozen.tx}: status CONSUMED, but its stored SETTLE outcome is an Unfreeze's`],
      () => sql("UPDATE transactions SET status = 'UNFROZEN' WHERE id = ?", [unfrozen.pk]),
    );
    const consumed = await charge("freeze");
    await s.client.call("consume", { transactionId: consumed.transactionId, actualAmount: 0n });
    await tampered(
      () => sql("UPDATE transactions SET status = 'UNFROZEN' WHERE id = ?", [consumed.pk]),
      [`${consumed.tx}: status UNFROZEN, but its stored SETTLE outcome is a Consume's`],
      () => sql("UPDATE transactions SET status = 'CONSUMED' WHERE id = ?", [consumed.pk]),
    );
  });

  it("an allocation on another account than its entries", async () => {
    const c = await charge("freeze");
    const other = await s.client.call("deposit", { customerId: c.customerId, amount: 5n, expiresAt: ts(s.clock.now() + 3600 * SECOND) });
    await tampered(
      () => sql("UPDATE allocations SET account_id = ? WHERE transaction_pk = ?", [other.account?.id, c.pk]),
      [
        `${c.tx}: allocated 0 from account ${c.accountId}, its entries took 40`,
        `${c.tx}: allocated 40 from account ${other.account?.id}, its entries took 0`,
      ],
      () => sql("UPDATE allocations SET account_id = ? WHERE transaction_pk = ?", [c.accountId, c.pk]),
    );
  });

  it("entries and an outcome whose transaction is gone", async () => {
    const c = await charge("deduct");
    const [row] = await sql("SELECT * FROM transactions WHERE id = ?", [c.pk]);
    const [allocation] = await sql("SELECT * FROM allocations WHERE transaction_pk = ?", [c.pk]);
    await tampered(
      () => sql("DELETE t, a FROM transactions t JOIN allocations a ON a.transaction_pk = t.id WHERE t.id = ?", [c.pk]),
      [
        `ledger entries reference missing transaction pk ${c.pk}`,
        `missing transaction pk ${c.pk}: allocated 0 from account ${c.accountId}, its entries took 40`,
        `${c.tx}: a stored outcome, but no transaction`,
      ],
      async () => {
        await sql("INSERT INTO transactions SET ?", [row]);
        await sql("INSERT INTO allocations SET ?", [allocation]);
      },
    );
  });
});

describe("verify: links between the tables", () => {
  it("entries on an account of another customer", async () => {
    const c = await charge("deduct");
    const [owner] = await sql("SELECT customer_pk FROM accounts WHERE id = ?", [c.accountId]);
    // Another customer whose account's key (credit type, source, dates) differs from c's.
    const stranger = await s.client.call("deposit", { customerId: uid("cust"), amount: 1n, expiresAt: ts(s.clock.now() + 3600 * SECOND) });
    const [strangerRow] = await sql("SELECT customer_pk FROM accounts WHERE id = ?", [stranger.account?.id]);
    const [first] = await sql("SELECT MIN(id) AS id, COUNT(*) AS n FROM ledger_entries WHERE account_id = ?", [c.accountId]);
    await tampered(
      () => sql("UPDATE accounts SET customer_pk = ? WHERE id = ?", [strangerRow?.customer_pk, c.accountId]),
      [`account ${c.accountId}: ${first?.n} ledger entries (first ${first?.id}) of another customer`],
      () => sql("UPDATE accounts SET customer_pk = ? WHERE id = ?", [owner?.customer_pk, c.accountId]),
    );
  });

  it("an expiry recorded or not, against the account's EXPIRE entries", async () => {
    const customerId = uid("cust");
    const d = await s.client.call("deposit", { customerId, amount: 30n, expiresAt: ts(s.clock.now() + 2 * SECOND) });
    s.clock.advance(3 * SECOND);
    await recordExpiries(s.app.context);
    const account = d.account?.id;
    await tampered(
      () => sql("UPDATE accounts SET expiry_recorded = FALSE WHERE id = ?", [account]),
      [`account ${account}: EXPIRE entries, but its expiry is not recorded`],
      () => sql("UPDATE accounts SET expiry_recorded = TRUE WHERE id = ?", [account]),
    );
  });

  it("a write whose stored outcome is gone, so that a retry would be refused or applied again", async () => {
    const c = await charge("freeze");
    await s.client.call("consume", { transactionId: c.transactionId, actualAmount: 10n });
    const [deposit] = await sql("SELECT idempotency_key FROM ledger_entries WHERE operation = 'DEPOSIT' AND account_id = ?", [c.accountId]);
    const key = String(deposit?.idempotency_key);
    for (const [scope, name, line] of [
      ["SPEND", c.transactionId, `${c.tx}: 0 stored SPEND outcomes, expected 1`],
      ["SETTLE", c.transactionId, `${c.tx}: settled, but no stored SETTLE outcome`],
      ["DEPOSIT", key, `deposit key ${key} (project ${c.projectId}): DEPOSIT entries, but no stored outcome (a retry would apply again)`],
    ] as const) {
      const [outcome] = await sql("SELECT * FROM idempotency_outcomes WHERE scope = ? AND idempotency_key = ?", [scope, name]);
      await tampered(
        () => sql("DELETE FROM idempotency_outcomes WHERE id = ?", [outcome?.id]),
        [line],
        () => sql("INSERT INTO idempotency_outcomes SET ?", [outcome]),
      );
    }
    const [owner] = await sql("SELECT customer_pk FROM idempotency_outcomes WHERE scope = 'DEPOSIT' AND idempotency_key = ?", [key]);
    await tampered(
      () => sql("UPDATE idempotency_outcomes SET customer_pk = customer_pk + 1000 WHERE scope = 'DEPOSIT' AND idempotency_key = ?", [key]),
      [`deposit key ${key} (project ${c.projectId}): its stored outcome belongs to another customer than its entries`],
      () =>
        sql("UPDATE idempotency_outcomes SET customer_pk = ? WHERE scope = 'DEPOSIT' AND idempotency_key = ?", [owner?.customer_pk, key]),
    );
  });

  it("a keyed grant of slot capacity whose stored outcome is gone, and an outcome of no grant", async () => {
    const slots = slotClientsFor(s.app.port, s.apiKey);
    const key = uid("grant");
    try {
      await slots.slots.call("grantCapacity", { customerId: uid("cust"), wallet: "ip", amount: 10n, idempotencyKey: key });
    } finally {
      slots.close();
    }
    const [outcome] = await sql("SELECT * FROM idempotency_outcomes WHERE scope = 'SLOT' AND idempotency_key = ?", [key]);
    await tampered(
      () => sql("DELETE FROM idempotency_outcomes WHERE id = ?", [outcome?.id]),
      [`slot key ${key} (project ${outcome?.project_id}): grant or revoke events, but no stored outcome (a retry would apply again)`],
      () => sql("INSERT INTO idempotency_outcomes SET ?", [outcome]),
    );
    const ghost = uid("ghost");
    await tampered(
      () => sql("INSERT INTO idempotency_outcomes SET ?", [{ ...outcome, id: undefined, idempotency_key: ghost }]),
      [`slot key ${ghost} (project ${outcome?.project_id}): a stored outcome, but no grant or revoke events`],
      () => sql("DELETE FROM idempotency_outcomes WHERE scope = 'SLOT' AND idempotency_key = ?", [ghost]),
    );
  });

  it("a customer row gone from under its ledger", async () => {
    const c = await charge("deduct");
    const [row] = await sql("SELECT * FROM customers WHERE customer_id = ?", [c.customerId]);
    const events = await sql("SELECT event_id FROM events WHERE customer_id = ? ORDER BY id", [c.customerId]);
    await tampered(
      () => sql("DELETE FROM customers WHERE id = ?", [row?.id]),
      [
        `customer pk ${row?.id}: 2 ledger entries of a customer that does not exist`,
        ...events.map((e) => `event ${e.event_id}: its customer ${c.customerId} (project ${c.projectId}) does not exist`),
      ],
      () =>
        sql(
          "INSERT INTO customers (id, project_id, customer_id, name, email, metadata, created_at, ledger_sequence, ledger_total, ledger_used, ledger_frozen, has_alerts) VALUES (?)",
          [
            [
              row?.id,
              row?.project_id,
              row?.customer_id,
              row?.name,
              row?.email,
              row?.metadata,
              row?.created_at,
              row?.ledger_sequence,
              row?.ledger_total,
              row?.ledger_used,
              row?.ledger_frozen,
              row?.has_alerts,
            ],
          ],
        ),
    );
  });
});

describe("verify: the ledger's order", () => {
  it("one entry out of sequence is one finding and a count, not a line for every entry after it", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 100n });
    for (let i = 0; i < 6; i++) await s.client.call("deduct", { customerId, transactionId: uid("tx"), amount: 1n });
    const [c] = await sql("SELECT id, project_id FROM customers WHERE customer_id = ?", [customerId]);
    const [third] = await sql("SELECT id FROM ledger_entries WHERE customer_pk = ? AND sequence = 3", [c?.id]);
    const [fourth] = await sql("SELECT id FROM ledger_entries WHERE customer_pk = ? AND sequence = 4", [c?.id]);
    const [trigger] = await sql("SHOW CREATE TRIGGER ledger_entries_no_update");
    const [event] = await sql("SELECT event_id FROM events WHERE payload LIKE ? AND customer_id = ?", ['%"sequence":"3"%', customerId]);
    const name = `customer ${customerId} (project ${c?.project_id})`;
    await tampered(
      async () => {
        await sql("DROP TRIGGER ledger_entries_no_update");
        await sql("UPDATE ledger_entries SET sequence = 100 WHERE id = ?", [third?.id]);
      },
      [
        `ledger entry ${fourth?.id} of ${name}: sequence 4, expected 3`,
        `${name}: 1 more ledger entry out of line after that`,
        `${name}: ledger position #7 (total 100, used 6, frozen 0), its entries say #100 (total 100, used 2, frozen 0)`,
        `event ${event?.event_id}: entry #3 of ${name} is not in the ledger`,
      ],
      async () => {
        await sql("UPDATE ledger_entries SET sequence = 3 WHERE id = ?", [third?.id]);
        await sql(String(trigger?.["SQL Original Statement"]));
      },
    );
    await expect(sql("UPDATE ledger_entries SET amount = amount WHERE id = ?", [third?.id])).rejects.toThrow(/append-only/);
  });
});

describe("verify: the event feed against the ledger", () => {
  it("a publisher whose stored position is not in this feed (restored under it)", async () => {
    await s.client.call("deposit", { customerId: uid("cust"), amount: 5n });
    // Every event stamped: the feed's top stays where it is read.
    for (let tries = 0; (await sql("SELECT 1 FROM events WHERE position IS NULL LIMIT 1")).length > 0; tries++) {
      expect(tries).toBeLessThan(100);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const [top] = await sql("SELECT MAX(position) AS top FROM events");
    const past = BigInt(top?.top ?? 0) + 7n;
    await tampered(
      () => sql("INSERT INTO event_publishers (name, position, updated_at) VALUES ('nats', ?, NOW(3))", [String(past)]),
      [
        `the nats publisher's position ${past} is not in this feed (its top is ${top?.top}; the database was restored under it?): ` +
          "the events numbered since would not be sent; a publisher sends every kept event again when it next runs",
      ],
      () => sql("DELETE FROM event_publishers WHERE name = 'nats'"),
    );
  });

  it("an event whose entries' sequences do not run on by one", async () => {
    const customerId = uid("cust");
    await s.client.call("deposit", { customerId, amount: 5n, expiresAt: ts(s.clock.now() + 3600 * SECOND) });
    await s.client.call("deposit", { customerId, amount: 5n });
    const transactionId = uid("tx");
    const d = await s.client.call("deduct", { customerId, transactionId, amount: 8n });
    expect(d.details).toHaveLength(2);
    const [event] = await sql("SELECT id, event_id, project_id FROM events WHERE transaction_id = ?", [transactionId]);
    const [second] = await sql("SELECT JSON_VALUE(payload, '$.entries[1].sequence') AS seq FROM events WHERE id = ?", [event?.id]);
    const moved = String(Number(second?.seq) + 5);
    await tampered(
      () => sql("UPDATE events SET payload = JSON_SET(payload, '$.entries[1].sequence', ?) WHERE id = ?", [moved, event?.id]),
      [
        `event ${event?.event_id}: entry #${moved} of customer ${customerId} (project ${event?.project_id}) is not in the ledger`,
        `event ${event?.event_id}: its entries' sequences do not run on by one`,
      ],
      () => sql("UPDATE events SET payload = JSON_SET(payload, '$.entries[1].sequence', ?) WHERE id = ?", [second?.seq, event?.id]),
    );
  });

  it("an event whose entry says another amount than the ledger, and a gap in the positions", async () => {
    const c = await charge("deduct");
    const stamped = () => sql("SELECT id, event_id, position, project_position FROM events WHERE transaction_id = ?", [c.transactionId]);
    // The stamper orders the event within EVENTS_STAMP_SPACING_MS of its commit.
    for (let tries = 0; (await stamped())[0]?.position === null; tries++) {
      expect(tries).toBeLessThan(100);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const [event] = await stamped();
    const [entry] = await sql("SELECT id, sequence FROM ledger_entries WHERE transaction_pk = ?", [c.pk]);
    await tampered(
      () => sql("UPDATE events SET payload = JSON_SET(payload, '$.entries[0].amount', '41') WHERE id = ?", [event?.id]),
      [
        `event ${event?.event_id}: entry #${entry?.sequence} of customer ${c.customerId} (project ${c.projectId}) differs from ledger entry ${entry?.id} in its operation, amount, account or credit type`,
      ],
      () => sql("UPDATE events SET payload = JSON_SET(payload, '$.entries[0].amount', '40') WHERE id = ?", [event?.id]),
    );
    const [original] = await sql("SELECT payload FROM events WHERE id = ?", [event?.id]);
    const restore = () => sql("UPDATE events SET payload = ? WHERE id = ?", [JSON.stringify(original?.payload), event?.id]);
    const entryLine = `event ${event?.event_id}: entry #${entry?.sequence} of customer ${c.customerId} (project ${c.projectId})`;
    await tampered(
      () => sql("UPDATE events SET payload = JSON_REMOVE(payload, '$.entries[0].amount') WHERE id = ?", [event?.id]),
      [`${entryLine} differs from ledger entry ${entry?.id} in its operation, amount, account or credit type`],
      restore,
    );
    await tampered(
      () => sql("UPDATE events SET payload = JSON_SET(payload, '$.balance_after.used', '39') WHERE id = ?", [event?.id]),
      [`event ${event?.event_id}: its balance_after is not its last entry's`],
      restore,
    );
    await tampered(
      () => sql("UPDATE events SET type = 'ledger.freeze' WHERE id = ?", [event?.id]),
      [`${entryLine} is DEDUCT, which a ledger.freeze event cannot hold`],
      () => sql("UPDATE events SET type = 'ledger.deduct' WHERE id = ?", [event?.id]),
    );
    const [top] = await sql("SELECT MAX(position) AS high, MIN(position) AS low, COUNT(*) AS n FROM events");
    const [projectTop] = await sql("SELECT MAX(project_position) AS high, COUNT(*) AS n FROM events WHERE project_id = ?", [c.projectId]);
    await tampered(
      () => sql("UPDATE events SET position = position + 1000, project_position = project_position + 1000 WHERE id = ?", [event?.id]),
      [
        `the feed: positions 1…${BigInt(top?.high) + 1000n} hold ${top?.n} events after 0 pruned; position ${event?.position} is missing`,
        `project ${c.projectId}'s feed: positions 1…${BigInt(projectTop?.high) + 1000n} hold ${projectTop?.n} events after 0 pruned; position ${event?.project_position} is missing`,
      ],
      () => sql("UPDATE events SET position = ?, project_position = ? WHERE id = ?", [event?.position, event?.project_position, event?.id]),
    );
  });
});
