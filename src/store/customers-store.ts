import { and, eq, inArray } from "drizzle-orm";
import { type SQL, sql } from "./sql.js";
import type { CustomerRef } from "../domain/customer-ref.js";
import type { Metadata } from "../domain/types.js";
import { byProject, keyListsSql } from "./key-lists.js";
import type { Db } from "./database.js";
import { decodeMetadata, encodeJson } from "./json-codec.js";
import { bigOf, msOf, stringOf } from "./row-values.js";
import type { Row } from "./run-transaction.js";
import { customers } from "./schema.js";

export interface CustomerRow {
  readonly pk: bigint;
  readonly customerId: string;
  readonly name: string;
  readonly email: string;
  readonly metadata: Metadata;
  readonly createdAtMs: number;
  /** The sequence of its ledger's last entry when read (0 before the first). */
  readonly ledgerSequence: bigint;
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
    ledgerSequence: row.ledgerSequence,
  };
}

/** Customers by their row ids, as writes name them (their project and public id). */
export async function customerRefsByPk(db: Db, pks: readonly bigint[]): Promise<Map<bigint, CustomerRef>> {
  if (pks.length === 0) return new Map();
  const rows = await db
    .select({ pk: customers.id, projectId: customers.projectId, customerId: customers.customerId })
    .from(customers)
    .where(inArray(customers.id, [...new Set(pks)]));
  return new Map(rows.map((row) => [row.pk, { projectId: row.projectId, customerId: row.customerId }]));
}

/** Customer `c` by its public id. */
export const customerByIdSql = (projectId: bigint, customerId: string): SQL =>
  sql`c.project_id = ${projectId} AND c.customer_id = ${customerId}`;

/**
 * Rows of customers (or of a table keyed by project and customer id, as `alias`) by their public
 * ids, one IN list per project (key-lists.ts): what a list of writes names its customers by.
 */
export const customersNamedSql = (refs: readonly CustomerRef[], alias: SQL): SQL =>
  keyListsSql(refs, byProject(alias), sql`${alias}.customer_id`, (r) => r.customerId);

export interface NewCustomer {
  readonly customerId: string;
  readonly name: string;
  readonly email: string;
  readonly metadata: Metadata;
  readonly nowMs: number;
}

/**
 * Creates the customer unless it exists; either way the row is then exclusively locked by this
 * transaction (INSERT … ON DUPLICATE KEY UPDATE locks the row it finds). An existing customer
 * keeps its name, email and metadata, except those still empty, which this call fills: a customer that a capacity grant created (with none) takes them from its first
 * deposit that has them, as one that a deposit created does.
 */
export function upsertCustomerSql(projectId: bigint, customer: NewCustomer): SQL {
  const metadata = encodeJson(customer.metadata);
  return sql`INSERT INTO ${customers} (project_id, customer_id, name, email, metadata, created_at)
    VALUES (${projectId}, ${customer.customerId}, ${customer.name}, ${customer.email}, ${metadata}, ${new Date(customer.nowMs)})
    ON DUPLICATE KEY UPDATE name = IF(name = '', ${customer.name}, name),
      email = IF(email = '', ${customer.email}, email),
      metadata = IF(metadata = ${encodeJson({})}, ${metadata}, metadata)`;
}

/** A customer's pk by its public id, as a subquery. */
export const customerPkSql = (projectId: bigint, customerId: string): SQL =>
  sql`(SELECT id FROM ${customers} WHERE project_id = ${projectId} AND customer_id = ${customerId})`;

/**
 * Creates a deposit's customer when it does not exist yet: one row inserted (1 affected row) or
 * none. The row is then locked by this transaction, so two first deposits of one customer
 * serialize on it (the second waits on the UNIQUE index, then fails as a duplicate and is retried,
 * finding the row). An existing customer is not touched here: its name, email and metadata are
 * filled by the deposit's writes, once the deposit is known to land (fillCustomerSql).
 */
export function createCustomerSql(projectId: bigint, customer: NewCustomer): SQL {
  return sql`INSERT INTO ${customers} (project_id, customer_id, name, email, metadata, created_at)
    SELECT ${projectId}, ${customer.customerId}, ${customer.name}, ${customer.email}, ${encodeJson(customer.metadata)},
      ${new Date(customer.nowMs)} FROM DUAL
    WHERE NOT EXISTS (SELECT 1 FROM ${customers} WHERE project_id = ${projectId} AND customer_id = ${customer.customerId})`;
}

/**
 * A deposit's labels fill what its customer still lacks: a customer a capacity grant created (with
 * none) takes them from its first deposit that has them, as one a deposit created does.
 */
export function fillCustomerSql(customerPk: bigint, customer: Omit<NewCustomer, "customerId" | "nowMs">): SQL {
  const metadata = encodeJson(customer.metadata);
  return sql`UPDATE ${customers} SET name = IF(name = '', ${customer.name}, name), email = IF(email = '', ${customer.email}, email),
      metadata = IF(metadata = ${encodeJson({})}, ${metadata}, metadata)
    WHERE id = ${customerPk}`;
}

/** Removes a customer the prefetch created for deposits that were all refused (nothing else can name it yet). */
export const removeCreatedCustomerSql = (customerPk: bigint): SQL => sql`DELETE FROM ${customers} WHERE id = ${customerPk}`;

/** A customer as a search lists it. */
export interface CustomerSummary {
  readonly pk: bigint;
  readonly customerId: string;
  readonly name: string;
  readonly email: string;
  readonly createdAtMs: number;
}

/** `text` as a LIKE prefix pattern with `!` as the escape character: `%`, `_` and `!` match themselves. */
const likePrefix = (text: string): string => `${text.replace(/[!%_]/g, (c) => `!${c}`)}%`;

/**
 * Customers whose id starts with `text` (byte for byte, as ids compare), or whose name or email
 * starts with it in any case (through the lower-cased, indexed name_search and email_search),
 * newest first (highest pk), those below `beforePk` when given; every customer when `text` is
 * empty. Each of the three matches is read by its own index and bounded by `limit` before they
 * are merged.
 */
export async function searchCustomers(
  db: Db,
  projectId: bigint,
  text: string,
  beforePk: bigint | null,
  limit: number,
): Promise<CustomerSummary[]> {
  const older = beforePk === null ? sql`` : sql` AND id < ${beforePk}`;
  const bounded = sql` ORDER BY id DESC LIMIT ${limit}`;
  const matching =
    text === ""
      ? sql`SELECT id FROM ${customers} WHERE project_id = ${projectId}${older}${bounded}`
      : sql`(SELECT id FROM ${customers} WHERE project_id = ${projectId} AND customer_id LIKE ${likePrefix(text)} ESCAPE '!'${older}${bounded})
        UNION (SELECT id FROM ${customers} WHERE project_id = ${projectId} AND name_search LIKE LOWER(${likePrefix(text)}) ESCAPE '!'${older}${bounded})
        UNION (SELECT id FROM ${customers} WHERE project_id = ${projectId} AND email_search LIKE LOWER(${likePrefix(text)}) ESCAPE '!'${older}${bounded})`;
  const [rows] = (await db.execute(
    sql`SELECT c.id, c.customer_id, c.name, c.email, c.created_at FROM (${matching}) m JOIN ${customers} c ON c.id = m.id
      ORDER BY c.id DESC LIMIT ${limit}`,
  )) as unknown as [Row[]];
  return rows.map((row) => ({
    pk: bigOf(row.id),
    customerId: stringOf(row.customer_id),
    name: stringOf(row.name),
    email: stringOf(row.email),
    createdAtMs: msOf(row.created_at),
  }));
}
