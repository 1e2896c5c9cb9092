import { sql } from "drizzle-orm";
import type { Db } from "../store/database.js";

export interface VerifyReport {
  readonly accounts: number;
  readonly ledgerEntries: number;
  readonly transactions: number;
  readonly problems: string[];
}

type Row = Record<string, string | number | null>;

async function rows(db: Db, query: ReturnType<typeof sql>): Promise<Row[]> {
  const [result] = (await db.execute(query)) as unknown as [Row[]];
  return result;
}

const big = (v: string | number | null): bigint => BigInt(v ?? 0);

/**
 * Recomputes every account from the append-only ledger and checks the design's invariants:
 * total = Σ DEPOSIT; used = Σ DEDUCT + Σ CONSUME; frozen = Σ FREEZE − Σ CONSUME (not overage)
 * − Σ UNFREEZE; each hold's allocations add up to it and each settled transaction's entries to
 * what it reports. Every difference is one line in `problems`.
 */
export async function verifyLedger(db: Db): Promise<VerifyReport> {
  const problems: string[] = [];
  const accounts = await rows(
    db,
    sql`SELECT a.id, a.total, a.used, a.frozen,
      COALESCE(SUM(CASE WHEN l.operation = 'DEPOSIT' THEN l.amount END), 0) AS l_total,
      COALESCE(SUM(CASE WHEN l.operation IN ('DEDUCT', 'CONSUME') THEN l.amount END), 0) AS l_used,
      COALESCE(SUM(CASE WHEN l.operation = 'FREEZE' THEN l.amount
                        WHEN l.operation = 'UNFREEZE' THEN -l.amount
                        WHEN l.operation = 'CONSUME' AND l.overage = 0 THEN -l.amount END), 0) AS l_frozen
    FROM accounts a LEFT JOIN ledger_entries l ON l.account_id = a.id
    GROUP BY a.id, a.total, a.used, a.frozen`,
  );
  for (const a of accounts) {
    for (const field of ["total", "used", "frozen"] as const) {
      const stored = big(a[field] ?? null);
      const fromLedger = big(a[`l_${field}`] ?? null);
      if (stored !== fromLedger) problems.push(`account ${a.id}: ${field} is ${stored}, ledger says ${fromLedger}`);
    }
    if (big(a.used ?? null) + big(a.frozen ?? null) > big(a.total ?? null)) problems.push(`account ${a.id}: used + frozen exceed total`);
  }

  const orphans = await rows(
    db,
    sql`SELECT DISTINCT l.account_id FROM ledger_entries l LEFT JOIN accounts a ON a.id = l.account_id WHERE a.id IS NULL`,
  );
  for (const o of orphans) problems.push(`ledger entries reference missing account ${o.account_id}`);

  const holds = await rows(
    db,
    sql`SELECT t.transaction_id, t.kind, t.status, t.amount, t.consumed_amount, t.returned_amount, t.overage_amount,
      (SELECT COALESCE(SUM(al.amount), 0) FROM allocations al WHERE al.transaction_pk = t.id) AS allocated,
      COALESCE(SUM(CASE WHEN l.operation IN ('DEDUCT', 'FREEZE') THEN l.amount END), 0) AS spent,
      COALESCE(SUM(CASE WHEN l.operation = 'CONSUME' THEN l.amount END), 0) AS consumed,
      COALESCE(SUM(CASE WHEN l.operation = 'CONSUME' AND l.overage = 1 THEN l.amount END), 0) AS overage,
      COALESCE(SUM(CASE WHEN l.operation = 'UNFREEZE' THEN l.amount END), 0) AS returned
    FROM transactions t LEFT JOIN ledger_entries l ON l.transaction_pk = t.id
    GROUP BY t.id, t.transaction_id, t.kind, t.status, t.amount, t.consumed_amount, t.returned_amount, t.overage_amount`,
  );
  for (const t of holds) {
    const name = `transaction ${t.transaction_id}`;
    const expect = (what: string, actual: bigint, wanted: bigint) => {
      if (actual !== wanted) problems.push(`${name}: ${what} is ${actual}, expected ${wanted}`);
    };
    expect("allocated", big(t.allocated ?? null), big(t.amount ?? null));
    expect("ledger spend", big(t.spent ?? null), big(t.amount ?? null));
    expect("ledger consume", big(t.consumed ?? null), big(t.consumed_amount ?? null));
    expect("ledger overage", big(t.overage ?? null), big(t.overage_amount ?? null));
    expect("ledger unfreeze", big(t.returned ?? null), big(t.returned_amount ?? null));
    if (t.status === "FROZEN") expect("settled amounts", big(t.consumed_amount ?? null) + big(t.returned_amount ?? null), 0n);
    if (t.status === "CONSUMED" || t.status === "UNFROZEN") {
      expect("consumed + returned - overage", big(t.consumed_amount ?? null) + big(t.returned_amount ?? null) - big(t.overage_amount ?? null), big(t.amount ?? null));
    }
  }

  const [count] = await rows(db, sql`SELECT COUNT(*) AS n FROM ledger_entries`);
  return { accounts: accounts.length, ledgerEntries: Number(count?.n ?? 0), transactions: holds.length, problems };
}
