import { sql as drizzleSql } from "drizzle-orm";
import { MySqlDialect } from "drizzle-orm/mysql-core";
import mysql from "mysql2";
import { describe, expect, it } from "vitest";
import { NO_EXPIRY_MS } from "../../src/domain/limits.js";
import { inactiveBalancesSql, lockCustomersSql, lockFirstSpendableSql } from "../../src/store/accounts-store.js";
import { customerPkSql } from "../../src/store/customers-store.js";
import { ledgerPart } from "../../src/store/ledger-store.js";
import { findOutcomesSql } from "../../src/store/outcomes-store.js";
import { type Escaping, inlineStatement } from "../../src/store/run-transaction.js";
import { sql } from "../../src/store/sql.js";
import { newTransactionPart, transactionPkSql } from "../../src/store/transactions-store.js";
import { writeSetSql } from "../../src/store/write-set.js";

// The statement text of the hot path must be exactly what drizzle's MySQL dialect builds from the
// same statement (our templates, ./src/store/sql.ts, convert with getSQL()) once mysql2 has
// formatted its parameters into it: values escaped by mysql2 either way.
const dialect = new MySqlDialect();
type SqlValue = Parameters<typeof mysql.escape>[0];
const mysql2: Escaping = {
  escape: (value) => mysql.escape(value as SqlValue),
  format: (text, values) => mysql.format(text, values as SqlValue[]),
};
const viaDialect = (statement: ReturnType<typeof sql>) => {
  const { sql: text, params } = dialect.sqlToQuery(statement.getSQL());
  return mysql.format(text, params as SqlValue[]);
};
const NOW = 1_800_000_000_000;

describe("inlineStatement", () => {
  const statements = [
    lockCustomersSql([customerPkSql(1n, "c1"), customerPkSql(2n, "c2")]),
    inactiveBalancesSql([1n, 2n], [customerPkSql(1n, "c1"), customerPkSql(2n, "c2")], NOW),
    lockFirstSpendableSql([{ creditTypes: ["a"], customers: [{ projectId: 1n, customerId: "c1" }] }], NOW, 16),
    findOutcomesSql([{ projectId: 1n, scope: "SPEND", key: "t1" }]),
    ...writeSetSql([
      { kind: "deltas", deltas: [{ accountId: 5n, used: 0n, frozen: 3n }] },
      {
        kind: "settle",
        holdPk: 9n,
        settlement: { status: "CONSUMED", consumedAmount: 2n, returnedAmount: 1n, overageAmount: 0n, automatic: false, nowMs: NOW },
      },
      newTransactionPart(1n, {
        transactionId: "t1",
        customerPk: 7n,
        kind: "FREEZE",
        status: "FROZEN",
        amount: 3n,
        creditTypes: ["a"],
        businessType: 0,
        description: "d",
        metadata: { k: "v" },
        autoAction: null,
        autoAtMs: NO_EXPIRY_MS,
        apiKeyId: null,
        nowMs: NOW,
      }),
      ledgerPart(
        {
          projectId: 1n,
          customerPk: 7n,
          transactionPk: transactionPkSql(1n, "t1"),
          transactionId: "t1",
          idempotencyKey: "",
          businessType: 0,
          description: "",
          metadata: {},
          automatic: false,
          nowMs: NOW,
        },
        [
          {
            operation: "FREEZE",
            accountId: 5n,
            amount: 3n,
            creditType: "a",
            source: "s",
            position: { sequence: 1n, total: 3n, used: 0n, frozen: 3n },
          },
        ],
      ),
    ]),
    sql`SELECT ${null} AS n, ${true} AS b, ${sql.raw("1")} AS r, ${'it\'s \\ "q" ?'} AS s, ${new Date(NOW)} AS d, ${2n ** 63n} AS big`,
    sql`SELECT ${drizzleSql`${"inner"} AS d`}, ${sql.join([], sql`, `)}x${sql.join([sql`${1}`], sql`, `)}${sql.join([sql`a`, sql`${2}`, sql`c`], sql` OR `)}`,
  ];

  it.each(statements.map((s, i) => [i, s] as const))("builds statement %i as the dialect and mysql2's format do", (_i, statement) => {
    expect(inlineStatement(statement, mysql2)).toBe(viaDialect(statement));
  });

  it("escapes values as mysql2 does", () => {
    expect(inlineStatement(sql`SELECT ${"a'b"}, ${1n}, ${null}, ${false}`, mysql2)).toBe("SELECT 'a\\'b', 1, NULL, false");
  });

  it("leaves what it does not know to the dialect", () => {
    const inlined = sql`SELECT ${drizzleSql`${1}`.inlineParams()} AS one`;
    expect(inlineStatement(inlined, mysql2)).toBe("SELECT 1 AS one");
  });

  it("nests in drizzle's own templates as an SQLWrapper (in parentheses, as drizzle puts any wrapper)", () => {
    expect(dialect.sqlToQuery(drizzleSql`SELECT 1 WHERE ${sql`a = ${7}`}`)).toMatchObject({ sql: "SELECT 1 WHERE (a = ?)", params: [7] });
  });

  it("joins parts with a separator of text only", () => {
    expect(inlineStatement(sql`${sql.join([sql`${1}`, sql`${"x"}`], sql`, `)}`, mysql2)).toBe("1, 'x'");
    expect(() => sql.join([sql`a`], sql`${1}`)).toThrow("separator");
  });
});
