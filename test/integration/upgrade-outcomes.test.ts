import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { startApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { fingerprint } from "../../src/domain/fingerprint.js";
import type { DepositResult, SpendResult } from "../../src/domain/results.js";
import { encodeJson } from "../../src/store/json-codec.js";
import { expectError, TestClient } from "../support/client.js";
import { databaseMigratedThrough, uniqueDatabaseUrl } from "../support/database.js";

// A database from before the one idempotency envelope (migrations up to 0007) kept three stored
// responses: deposit_keys, transactions.response and transactions.settle_response. After the
// upgrade, every one of them still replays, and a different request under the same key is still
// refused with the code it had.
const LAST_MIGRATION_BEFORE_ENVELOPE = 7;
const NOW = Date.UTC(2026, 0, 1);

const db = uniqueDatabaseUrl("vb_upgrade_outcomes");
afterAll(async () => {
  await db.drop();
});

const balance = { total: 100n, used: 30n, frozen: 20n, available: 50n };
const line = (amount: bigint) => ({ accountId: 9n, creditType: "default", source: "default", amount });

// The fingerprints as the code before the envelope computed them (and still does for deposits
// and spends): the canonical request with its operation's name.
const depositFingerprint = fingerprint({
  op: "deposit",
  customerId: "old-cust",
  amount: 100n,
  creditType: "default",
  source: "default",
  startsAtMs: null,
  expiresAtMs: null,
  name: "",
  email: "",
  description: "",
  metadata: {},
});
const freezeFingerprint = fingerprint({
  op: "FREEZE",
  customerId: "old-cust",
  transactionId: "old-hold",
  amount: 20n,
  creditTypes: [],
  businessType: 0,
  description: "",
  metadata: {},
  autoSettlement: null,
});
const depositResponse: DepositResult = {
  customerId: "old-cust",
  account: {
    id: 9n,
    creditType: "default",
    source: "default",
    total: 100n,
    used: 0n,
    frozen: 0n,
    available: 100n,
    startsAtMs: null,
    expiresAtMs: null,
    status: "ACTIVE",
  },
  addedAmount: 100n,
  ledgerEntryId: 41n,
  balance: { total: 100n, used: 0n, frozen: 0n, available: 100n },
  isIdempotentReplay: false,
};
const freezeResponse: SpendResult = {
  transactionId: "old-hold",
  amount: 20n,
  details: [line(20n)],
  atMs: NOW,
  unfreezeAtMs: null,
  consumeAtMs: null,
  balance,
  isIdempotentReplay: false,
};
const consumeResponse = {
  transactionId: "old-consumed",
  consumedAmount: 20n,
  returnedAmount: 0n,
  overageAmount: 0n,
  details: [line(20n)],
  returnedDetails: [],
  atMs: NOW,
  balance,
  isIdempotentReplay: false,
};

async function migrateBeforeEnvelope(): Promise<void> {
  const connection = await databaseMigratedThrough(db, LAST_MIGRATION_BEFORE_ENVELOPE);
  const at = new Date(NOW);
  const hold = (id: number, txId: string, status: string, consumed: number, response: string, fp: string, settle: string | null) => [
    id,
    txId,
    status,
    consumed,
    fp,
    response,
    settle,
    at,
  ];
  try {
    await connection.query(
      `INSERT INTO customers (id, project_id, customer_id, metadata, created_at) VALUES (7, 1, 'old-cust', '{}', ?);
       INSERT INTO accounts (id, project_id, customer_pk, credit_type, source, starts_at_ms, expires_at_ms, total, used, frozen, created_at)
         VALUES (9, 1, 7, 'default', 'default', -62135596800001, 253402300800000, 100, 30, 20, ?);
       INSERT INTO deposit_keys (project_id, idempotency_key, customer_pk, request_fingerprint, response, created_at)
         VALUES (1, 'dep-key', 7, ?, ?, ?);`,
      [at, at, depositFingerprint, encodeJson(depositResponse), at],
    );
    const insertHold = `INSERT INTO transactions (id, project_id, transaction_id, customer_pk, kind, status, amount, consumed_amount,
        credit_types, metadata, request_fingerprint, response, settle_response, created_at)
      VALUES (?, 1, ?, 7, 'FREEZE', ?, 20, ?, '[]', '{}', ?, ?, ?, ?)`;
    await connection.query(insertHold, hold(1, "old-hold", "FROZEN", 0, encodeJson(freezeResponse), freezeFingerprint, null));
    await connection.query(
      insertHold,
      hold(
        2,
        "old-consumed",
        "CONSUMED",
        20,
        encodeJson({ ...freezeResponse, transactionId: "old-consumed" }),
        "f".repeat(64),
        encodeJson(consumeResponse),
      ),
    );
    await connection.query(
      `INSERT INTO allocations (project_id, transaction_pk, seq, account_id, amount) VALUES (1, 1, 0, 9, 20), (1, 2, 0, 9, 20)`,
    );
    // The ledger the account's figures came from (migration 0010 numbers it and sets the
    // customer's position from it): deposited 100, 10 deducted, two holds of 20, one consumed.
    const entry = (id: number, operation: string, amount: number, txPk: number | null, txId: string) =>
      connection.query(
        `INSERT INTO ledger_entries (id, project_id, customer_pk, account_id, operation, amount, credit_type, source, transaction_pk,
           transaction_id, metadata, created_at) VALUES (?, 1, 7, 9, ?, ?, 'default', 'default', ?, ?, '{}', ?)`,
        [id, operation, amount, txPk, txId, at],
      );
    await entry(41, "DEPOSIT", 100, null, "");
    await entry(42, "DEDUCT", 10, null, "old-deduct");
    await entry(43, "FREEZE", 20, 1, "old-hold");
    await entry(44, "FREEZE", 20, 2, "old-consumed");
    await entry(45, "CONSUME", 20, 2, "old-consumed");
  } finally {
    await connection.end();
  }
}

describe("upgrading a database from before the idempotency envelope", () => {
  it("replays every stored response and refuses the same keys for other requests as before", async () => {
    await migrateBeforeEnvelope();
    const announced: string[] = [];
    const app = await startApp(
      loadConfig({ DATABASE_URL: db.url, GRPC_HOST: "127.0.0.1", GRPC_PORT: "0", HTTP_PORT: "0", SWEEP_INTERVAL_MS: "0" }),
      {
        log: pino({ level: "silent" }),
        announce: (text) => announced.push(text),
      },
    );
    const client = new TestClient(app.port, announced.join("").trim().split("\n").at(-1) ?? "");
    try {
      const deposit = await client.call("deposit", { customerId: "old-cust", amount: 100n, idempotencyKey: "dep-key" });
      expect([deposit.isIdempotentReplay, deposit.ledgerEntryId, deposit.addedAmount]).toEqual([true, "41", 100n]);
      await expectError(client.call("deposit", { customerId: "old-cust", amount: 5n, idempotencyKey: "dep-key" }), "idempotency_conflict");

      const freeze = await client.call("freeze", { customerId: "old-cust", transactionId: "old-hold", amount: 20n });
      expect([freeze.isIdempotentReplay, freeze.frozenAmount, freeze.balance]).toEqual([true, 20n, balance]);
      await expectError(client.call("freeze", { customerId: "old-cust", transactionId: "old-hold", amount: 21n }), "idempotency_conflict");

      const consumed = await client.call("consume", { transactionId: "old-consumed", actualAmount: 20n });
      expect([consumed.isIdempotentReplay, consumed.consumedAmount, consumed.balance]).toEqual([true, 20n, balance]);
      expect((await client.call("consume", { transactionId: "old-consumed" })).isIdempotentReplay).toBe(true);
      await expectError(client.call("consume", { transactionId: "old-consumed", actualAmount: 5n }), "freeze_records_already_consumed");
      await expectError(client.call("unfreeze", { transactionId: "old-consumed" }), "no_unfreezable_records");

      const unfrozen = await client.call("unfreeze", { transactionId: "old-hold" });
      expect([unfrozen.isIdempotentReplay, unfrozen.unfrozenAmount, unfrozen.balance]).toEqual([
        false,
        20n,
        { total: 100n, used: 30n, frozen: 0n, available: 70n },
      ]);
      expect((await client.call("unfreeze", { transactionId: "old-hold" })).isIdempotentReplay).toBe(true);
      await expectError(client.call("consume", { transactionId: "old-hold" }), "no_consumable_freeze_records");
      const [tables] = await app.database.pool.query("SHOW TABLES LIKE 'deposit_keys'");
      expect(tables).toEqual([]);
    } finally {
      client.close();
      await app.stop();
    }
  });
});
