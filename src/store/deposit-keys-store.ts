import { sql, type SQL } from "drizzle-orm";
import type { StoredOutcome } from "../domain/idempotency.js";
import { stringOf } from "./row-values.js";
import type { Row } from "./run-transaction.js";
import { customers, depositKeys } from "./schema.js";

export const findDepositKeySql = (projectId: bigint, key: string): SQL =>
  sql`SELECT c.customer_id, k.request_fingerprint, k.response
    FROM ${depositKeys} k JOIN ${customers} c ON c.id = k.customer_pk
    WHERE k.project_id = ${projectId} AND k.idempotency_key = ${key}`;

export function storedOutcomeFromRow(row: Row | undefined): StoredOutcome | null {
  if (!row) return null;
  return {
    customerId: stringOf(row.customer_id),
    requestFingerprint: stringOf(row.request_fingerprint),
    response: stringOf(row.response),
  };
}

export function insertDepositKeySql(
  projectId: bigint,
  record: { key: string; customerPk: bigint; requestFingerprint: string; response: string; nowMs: number },
): SQL {
  return sql`INSERT INTO ${depositKeys} (project_id, idempotency_key, customer_pk, request_fingerprint, response, created_at)
    VALUES (${projectId}, ${record.key}, ${record.customerPk}, ${record.requestFingerprint}, ${record.response}, ${new Date(record.nowMs)})`;
}
