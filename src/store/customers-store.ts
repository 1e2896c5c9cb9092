import { and, eq, sql } from "drizzle-orm";
import type { Metadata } from "../domain/types.js";
import { decodeJson, encodeJson } from "./json-codec.js";
import type { Tx } from "./run-transaction.js";
import { customers } from "./schema.js";
import type { Db } from "./database.js";

export interface CustomerRow {
  readonly pk: bigint;
  readonly customerId: string;
  readonly name: string;
  readonly email: string;
  readonly metadata: Metadata;
  readonly createdAtMs: number;
}

function toCustomer(row: typeof customers.$inferSelect): CustomerRow {
  return {
    pk: row.id,
    customerId: row.customerId,
    name: row.name,
    email: row.email,
    metadata: decodeJson<Metadata>(row.metadata),
    createdAtMs: row.createdAt.getTime(),
  };
}

/** Locks the customer row: the serialization point of every write on this customer. */
export async function lockCustomer(tx: Tx, projectId: bigint, customerId: string): Promise<CustomerRow | null> {
  const rows = await tx
    .select()
    .from(customers)
    .where(and(eq(customers.projectId, projectId), eq(customers.customerId, customerId)))
    .for("update");
  return rows[0] ? toCustomer(rows[0]) : null;
}

export async function lockCustomerByPk(tx: Tx, pk: bigint, options: { skipLocked?: boolean } = {}): Promise<boolean> {
  const rows = await tx
    .select({ id: customers.id })
    .from(customers)
    .where(eq(customers.id, pk))
    .for("update", options.skipLocked ? { skipLocked: true } : {});
  return rows.length === 1;
}

export async function findCustomer(db: Db, projectId: bigint, customerId: string): Promise<CustomerRow | null> {
  const rows = await db
    .select()
    .from(customers)
    .where(and(eq(customers.projectId, projectId), eq(customers.customerId, customerId)));
  return rows[0] ? toCustomer(rows[0]) : null;
}

export interface NewCustomer {
  readonly customerId: string;
  readonly name: string;
  readonly email: string;
  readonly metadata: Metadata;
  readonly nowMs: number;
}

/**
 * Creates the customer unless it exists and returns its pk. Either way the row ends up
 * exclusively locked by this transaction (INSERT … ON DUPLICATE KEY UPDATE locks it).
 */
export async function upsertAndLockCustomer(tx: Tx, projectId: bigint, customer: NewCustomer): Promise<bigint> {
  const [result] = await tx
    .insert(customers)
    .values({
      projectId,
      customerId: customer.customerId,
      name: customer.name,
      email: customer.email,
      metadata: encodeJson(customer.metadata),
      createdAt: new Date(customer.nowMs),
    })
    .onDuplicateKeyUpdate({ set: { id: sql`LAST_INSERT_ID(${customers.id})` } });
  return BigInt(result.insertId);
}
