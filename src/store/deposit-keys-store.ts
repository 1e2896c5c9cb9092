import { and, eq } from "drizzle-orm";
import type { StoredOutcome } from "../billing/idempotency.js";
import type { Tx } from "./run-transaction.js";
import { customers, depositKeys } from "./schema.js";

export async function findDepositKey(tx: Tx, projectId: bigint, key: string): Promise<StoredOutcome | null> {
  const rows = await tx
    .select({
      customerId: customers.customerId,
      requestFingerprint: depositKeys.requestFingerprint,
      response: depositKeys.response,
    })
    .from(depositKeys)
    .innerJoin(customers, eq(customers.id, depositKeys.customerPk))
    .where(and(eq(depositKeys.projectId, projectId), eq(depositKeys.idempotencyKey, key)));
  return rows[0] ?? null;
}

export async function insertDepositKey(
  tx: Tx,
  projectId: bigint,
  record: { key: string; customerPk: bigint; requestFingerprint: string; response: string; nowMs: number },
): Promise<void> {
  await tx.insert(depositKeys).values({
    projectId,
    idempotencyKey: record.key,
    customerPk: record.customerPk,
    requestFingerprint: record.requestFingerprint,
    response: record.response,
    createdAt: new Date(record.nowMs),
  });
}
