import { sql as drizzleSql } from "drizzle-orm";
import { MySqlDialect } from "drizzle-orm/mysql-core";
import { describe, expect, it } from "vitest";
import { NO_EXPIRY_MS } from "../../src/domain/limits.js";
import { lockCustomersWithActiveAccountsSql, lockCustomerWithBalanceSql } from "../../src/store/accounts-store.js";
import { customerByIdSql, customerPkSql } from "../../src/store/customers-store.js";
import { ledgerPart } from "../../src/store/ledger-store.js";
import { findOutcomesSql } from "../../src/store/outcomes-store.js";
import { compileStatement } from "../../src/store/run-transaction.js";
import { sql } from "../../src/store/sql.js";
import { newTransactionPart, transactionPkSql } from "../../src/store/transactions-store.js";
import { writeSetSql } from "../../src/store/write-set.js";

// The statement compiler of the hot path must build exactly what drizzle's MySQL dialect builds
// from the same statement (our templates, ./src/store/sql.ts, convert with getSQL()).
const dialect = new MySqlDialect();
const NOW = 1_800_000_000_000;

describe("compileStatement", () => {
  const statements = [
    lockCustomerWithBalanceSql(customerByIdSql(1n, "c1"), NOW),
    lockCustomersWithActiveAccountsSql([customerPkSql(1n, "c1"), customerPkSql(2n, "c2")], NOW),
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
    sql`SELECT ${null} AS n, ${true} AS b, ${sql.raw("1")} AS r`,
    sql`SELECT ${drizzleSql`${"inner"} AS d`}, ${sql.join([], sql`, `)}x${sql.join([sql`${1}`], sql`, `)}${sql.join([sql`a`, sql`${2}`, sql`c`], sql` OR `)}`,
  ];

  it.each(statements.map((s, i) => [i, s] as const))("builds statement %i as the dialect does", (_i, statement) => {
    const { sql: text, params } = dialect.sqlToQuery(statement.getSQL());
    expect(compileStatement(statement)).toEqual({ sql: text, params });
  });

  it("leaves what it does not know to the dialect", () => {
    const inlined = sql`SELECT ${drizzleSql`${1}`.inlineParams()} AS one`;
    expect(compileStatement(inlined)).toEqual({ sql: "SELECT 1 AS one", params: [] });
  });

  it("nests in drizzle's own templates as an SQLWrapper (in parentheses, as drizzle puts any wrapper)", () => {
    expect(dialect.sqlToQuery(drizzleSql`SELECT 1 WHERE ${sql`a = ${7}`}`)).toMatchObject({ sql: "SELECT 1 WHERE (a = ?)", params: [7] });
  });

  it("joins parts with a separator of text only", () => {
    expect(compileStatement(sql`${sql.join([sql`${1}`, sql`${2}`], sql`, `)}`)).toEqual({ sql: "?, ?", params: [1, 2] });
    expect(() => sql.join([sql`a`], sql`${1}`)).toThrow("separator");
  });
});
