import { and, eq, sql, type SQL } from "drizzle-orm";
import type { Metadata } from "../domain/types.js";
import type { Db } from "./database.js";
import { decodeMetadata, encodeJson } from "./json-codec.js";
import { customers } from "./schema.js";

export interface CustomerRow {
  readonly pk: bigint;
  readonly customerId: string;
  readonly name: string;
  readonly email: string;
  readonly metadata: Metadata;
  readonly createdAtMs: number;
}

export async function findCustomer(db: Db, projectId: bigint, customerId: string): Promise<CustomerRow | null> {
  const rows = await db
    .select()
    .from(customers)
    .where(and(eq(customers.projectId, projectId), eq(customers.customerId, customerId)));
  const row = rows[0];
  if (!row) return null;
  return {
    pk: row.id,
    customerId: row.customerId,
    name: row.name,
    email: row.email,
    metadata: decodeMetadata(row.metadata),
    createdAtMs: row.createdAt.getTime(),
  };
}

/** Customer `c` by its public id. */
export const customerByIdSql = (projectId: bigint, customerId: string): SQL =>
  sql`c.project_id = ${projectId} AND c.customer_id = ${customerId}`;

/** Customer `c` by its primary key. */
export const customerByPkSql = (pk: bigint | SQL): SQL => sql`c.id = ${pk}`;

export interface NewCustomer {
  readonly customerId: string;
  readonly name: string;
  readonly email: string;
  readonly metadata: Metadata;
  readonly nowMs: number;
}

/**
 * Creates the customer unless it exists; LAST_INSERT_ID() is then its pk either way, and the row
 * is exclusively locked by this transaction (INSERT … ON DUPLICATE KEY UPDATE locks it). An
 * existing customer keeps its name, email and metadata, except those still empty, which this
 * call fills: a customer that a capacity grant created (with none) takes them from its first
 * deposit that has them, as one that a deposit created does.
 */
export function upsertCustomerSql(projectId: bigint, customer: NewCustomer): SQL {
  const metadata = encodeJson(customer.metadata);
  return sql`INSERT INTO ${customers} (project_id, customer_id, name, email, metadata, created_at)
    VALUES (${projectId}, ${customer.customerId}, ${customer.name}, ${customer.email}, ${metadata}, ${new Date(customer.nowMs)})
    ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id),
      name = IF(name = '', ${customer.name}, name),
      email = IF(email = '', ${customer.email}, email),
      metadata = IF(metadata = ${encodeJson({})}, ${metadata}, metadata)`;
}

/** A customer's pk by its public id, as a subquery. */
export const customerPkSql = (projectId: bigint, customerId: string): SQL =>
  sql`(SELECT id FROM ${customers} WHERE project_id = ${projectId} AND customer_id = ${customerId})`;
