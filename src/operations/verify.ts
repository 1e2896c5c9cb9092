import type { Db, Reader } from "../store/database.js";
import {
  accountFigures,
  inOneSnapshot,
  ledgerByAccount,
  ledgerByTransaction,
  overRefundedAccounts,
  transactionFigures,
  unsoundVoids,
} from "../store/verify-store.js";
import { verifyPools } from "./slots/verify-pools.js";
import { verifyLedgerPositions } from "./verify-positions.js";

export interface VerifyReport {
  readonly accounts: number;
  readonly ledgerEntries: number;
  readonly transactions: number;
  readonly pools: number;
  readonly problems: string[];
}

const big = (v: string | number | null | undefined): bigint => BigInt(v ?? 0);
const key = (v: string | number | null | undefined): string => String(v ?? "");

type AccountFigures = Awaited<ReturnType<typeof accountFigures>>[number];
type AccountLedger = Awaited<ReturnType<typeof ledgerByAccount>>[number];
type TransactionFigures = Awaited<ReturnType<typeof transactionFigures>>[number];
type TransactionLedger = Awaited<ReturnType<typeof ledgerByTransaction>>[number];

/** What an account's stored figures get wrong against its ledger entries (one line each). */
function accountProblems(a: AccountFigures, ledger: AccountLedger | undefined): string[] {
  const problems: string[] = [];
  for (const field of ["total", "used", "frozen"] as const) {
    const stored = big(a[field]);
    const fromLedger = big(ledger?.[field]);
    if (stored !== fromLedger) problems.push(`account ${a.id}: ${field} is ${stored}, ledger says ${fromLedger}`);
  }
  if (big(a.used) + big(a.frozen) > big(a.total)) problems.push(`account ${a.id}: used + frozen exceed total`);
  if (Number(a.expiry_recorded) === 1) {
    const left = big(a.total) - big(a.used) - big(a.frozen) - big(ledger?.expired);
    if (left !== 0n) problems.push(`account ${a.id}: expired, but ${left} is available once its EXPIRE entries are counted`);
  }
  return problems;
}

/** What a transaction's stored amounts get wrong against its allocations and ledger entries. */
function transactionProblems(t: TransactionFigures, ledger: TransactionLedger | undefined): string[] {
  const problems: string[] = [];
  const expect = (what: string, actual: bigint, wanted: bigint) => {
    if (actual !== wanted) problems.push(`transaction ${t.transaction_id}: ${what} is ${actual}, expected ${wanted}`);
  };
  expect("allocated", big(t.allocated), big(t.amount));
  expect("ledger spend", big(ledger?.spent), big(t.amount));
  expect("ledger consume", big(ledger?.consumed), big(t.consumed_amount));
  expect("ledger overage", big(ledger?.overage), big(t.overage_amount));
  expect("ledger unfreeze", big(ledger?.returned), big(t.returned_amount));
  if (t.status === "FROZEN") expect("settled amounts", big(t.consumed_amount) + big(t.returned_amount), 0n);
  if (t.status === "CONSUMED" || t.status === "UNFROZEN") {
    expect("consumed + returned - overage", big(t.consumed_amount) + big(t.returned_amount) - big(t.overage_amount), big(t.amount));
  }
  return problems;
}

/**
 * Recomputes every account from the append-only ledger and checks the design's invariants:
 * total = Σ DEPOSIT − Σ VOID; used = Σ DEDUCT + Σ CONSUME − Σ REFUND; frozen = Σ FREEZE
 * − Σ CONSUME (not overage) − Σ UNFREEZE; an expired account (its expiry recorded) has nothing
 * available once its EXPIRE entries are counted; each hold's allocations add up to it and each
 * settled transaction's entries to what it reports; a charge's refunds never exceed it, in all
 * or per account; a deposit's voids never exceed it; every customer's ledger is numbered without
 * a gap and each entry's balance_after follows from the one before (verify-positions.ts). Every
 * difference is one line in `problems`. The ledger is read in two grouped
 * scans and matched in memory (memory grows with accounts and transactions, not ledger rows),
 * all of it in one snapshot, so it may run while the service writes.
 */
export const verifyLedger = (db: Db): Promise<VerifyReport> => inOneSnapshot(db, verifySnapshot);

async function verifySnapshot(db: Reader): Promise<VerifyReport> {
  const problems: string[] = [];
  const byAccount = new Map((await ledgerByAccount(db)).map((r) => [key(r.account_id), r]));
  const byTransaction = new Map((await ledgerByTransaction(db)).map((r) => [key(r.transaction_pk), r]));
  let ledgerEntries = 0;
  for (const r of byAccount.values()) ledgerEntries += Number(r.entries ?? 0);

  const accounts = await accountFigures(db);
  for (const a of accounts) {
    problems.push(...accountProblems(a, byAccount.get(key(a.id))));
    byAccount.delete(key(a.id));
  }
  for (const orphan of byAccount.keys()) problems.push(`ledger entries reference missing account ${orphan}`);

  const transactions = await transactionFigures(db);
  for (const t of transactions) problems.push(...transactionProblems(t, byTransaction.get(key(t.id))));
  for (const r of await overRefundedAccounts(db)) {
    problems.push(`transaction pk ${r.transaction_pk}: refunded ${r.refunded} to account ${r.account_id}, which gave ${r.charged}`);
  }
  for (const v of await unsoundVoids(db)) {
    problems.push(
      `voids of record ${v.record_id}: ${v.voided} voided, not within a deposit of ${v.deposited ?? "nothing"} to its own account`,
    );
  }
  problems.push(...(await verifyLedgerPositions(db)));
  const pools = await verifyPools(db);
  problems.push(...pools.problems);
  return { accounts: accounts.length, ledgerEntries, transactions: transactions.length, pools: pools.pools, problems };
}
