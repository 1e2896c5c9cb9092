/**
 * The thinnest possible Freeze/Consume service, for the bench to compare against: bare
 * @grpc/grpc-js with the same generated service definition (same wire and serialization cost),
 * and the minimal SQL per call with mysql2 prepared statements — no validation, no idempotency,
 * no ledger, no allocation. Run: DATABASE_URL=… PORT=… node --import tsx bench/baseline-server.ts
 */
import {
  Server,
  ServerCredentials,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import mysql from "mysql2/promise";
import {
  BillingServiceService,
  DepositResponse,
  type ConsumeRequest,
  type ConsumeResponse,
  type FreezeRequest,
  type FreezeResponse,
} from "../gen/velobase/billing/v1/billing.js";

const url = new URL(process.env.DATABASE_URL ?? "mysql://root@127.0.0.1:3306/velobase_baseline");
const database = url.pathname.slice(1);
const admin = await mysql.createConnection({ host: url.hostname, port: Number(url.port || 3306), user: url.username });
await admin.query(`CREATE DATABASE IF NOT EXISTS \`${database}\``);
await admin.query(`USE \`${database}\``);
await admin.query(`CREATE TABLE IF NOT EXISTS b_accounts (
  customer_id VARCHAR(128) PRIMARY KEY, total BIGINT NOT NULL, used BIGINT NOT NULL DEFAULT 0, frozen BIGINT NOT NULL DEFAULT 0)`);
await admin.query(`CREATE TABLE IF NOT EXISTS b_holds (
  transaction_id VARCHAR(128) PRIMARY KEY, customer_id VARCHAR(128) NOT NULL, amount BIGINT NOT NULL)`);
await admin.query(`CREATE TABLE IF NOT EXISTS b_consumes (
  transaction_id VARCHAR(128) PRIMARY KEY, amount BIGINT NOT NULL)`);
await admin.end();

const pool = mysql.createPool({
  host: url.hostname,
  port: Number(url.port || 3306),
  user: url.username,
  database,
  connectionLimit: Number(process.env.DB_POOL_SIZE ?? 20),
  supportBigNumbers: true,
  bigNumberStrings: true,
});

type Row = Record<string, string>;

async function inTransaction<T>(work: (c: mysql.PoolConnection) => Promise<T>): Promise<T> {
  const c = await pool.getConnection();
  try {
    await c.query("BEGIN");
    const result = await work(c);
    await c.query("COMMIT");
    return result;
  } catch (error) {
    await c.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    c.release();
  }
}

function unary<Req, Res>(run: (r: Req) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    run(call.request).then(
      (response) => callback(null, response),
      (error: unknown) => callback({ code: status.FAILED_PRECONDITION, details: String(error) }, null),
    );
  };
}

const handlers = {
  freeze: unary<FreezeRequest, FreezeResponse>((r) =>
    inTransaction(async (c) => {
      const [rows] = await c.execute("SELECT total - used - frozen AS available FROM b_accounts WHERE customer_id = ? FOR UPDATE", [
        r.customerId,
      ]);
      const available = BigInt((rows as Row[])[0]?.available ?? "0");
      if (available < r.amount) throw new Error("insufficient_balance");
      await c.execute("UPDATE b_accounts SET frozen = frozen + ? WHERE customer_id = ?", [r.amount.toString(), r.customerId]);
      await c.execute("INSERT INTO b_holds (transaction_id, customer_id, amount) VALUES (?, ?, ?)", [
        r.transactionId,
        r.customerId,
        r.amount.toString(),
      ]);
      return {
        transactionId: r.transactionId,
        frozenAmount: r.amount,
        details: [],
        frozenAt: undefined,
        unfreezeAt: undefined,
        consumeAt: undefined,
        balance: undefined,
        isIdempotentReplay: false,
      };
    }),
  ),
  consume: unary<ConsumeRequest, ConsumeResponse>((r) =>
    inTransaction(async (c) => {
      const [rows] = await c.execute("SELECT customer_id, amount FROM b_holds WHERE transaction_id = ? FOR UPDATE", [r.transactionId]);
      const hold = (rows as Row[])[0];
      if (!hold) throw new Error("no_consumable_freeze_records");
      const frozen = hold.amount ?? "0";
      const actual = r.actualAmount ?? BigInt(frozen);
      await c.execute("UPDATE b_accounts SET frozen = frozen - ?, used = used + ? WHERE customer_id = ?", [
        frozen,
        actual.toString(),
        hold.customer_id ?? "",
      ]);
      await c.execute("INSERT INTO b_consumes (transaction_id, amount) VALUES (?, ?)", [r.transactionId, actual.toString()]);
      return {
        transactionId: r.transactionId,
        consumedAmount: actual,
        returnedAmount: 0n,
        overageAmount: 0n,
        details: [],
        consumedAt: undefined,
        balance: undefined,
        isIdempotentReplay: false,
        returnedDetails: [],
      };
    }),
  ),
  // Seeds accounts in bulk: customer_id = prefix + i for i < amount.
  deposit: unary<{ customerId: string; amount: bigint; name: string }, DepositResponse>(async (r) => {
    const count = Number(r.amount);
    for (let start = 0; start < count; start += 1000) {
      const ids = Array.from({ length: Math.min(1000, count - start) }, (_, i) => `${r.customerId}${start + i}`);
      const rows = ids.map(() => "(?, ?)").join(", ");
      await pool.query(
        `INSERT IGNORE INTO b_accounts (customer_id, total) VALUES ${rows}`,
        ids.flatMap((id) => [id, r.name]),
      );
    }
    return DepositResponse.fromPartial({ addedAmount: r.amount });
  }),
};

const server = new Server();
server.addService(BillingServiceService, handlers as unknown as UntypedServiceImplementation);
const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync(`127.0.0.1:${process.env.PORT ?? "0"}`, ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
);
process.stdout.write(`baseline listening on ${port}\n`);
process.on("SIGTERM", () => server.tryShutdown(() => void pool.end().then(() => process.exit(0))));
