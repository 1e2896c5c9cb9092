import type { Db, Reader } from "../store/database.js";
import {
  accountFigures,
  inOneSnapshot,
  ledgerByAccount,
  ledgerByTransaction,
  overRefundedAccounts,
  transactionFigures,
  unsoundVoids,
  bigOfRow as big,
} from "../store/verify-store.js";
import { verifyPools } from "./slots/verify-pools.js";
import { verifyEvents } from "./verify-events.js";
import { transactionName, verifyLinks } from "./verify-links.js";
import { verifyLedgerPositions } from "./verify-positions.js";

export interface VerifyReport {
  readonly accounts: number;
  readonly ledgerEntries: number;
  readonly transactions: number;
  /** Events kept in the feed (stamped). */
  readonly events: number;
  readonly pools: number;
  readonly problems: string[];
}

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
  const recorded = Number(a.expiry_recorded) === 1;
  if (recorded !== Number(ledger?.expire_entries ?? 0) > 0) {
    problems.push(
      recorded
        ? `account ${a.id}: expiry recorded, but no EXPIRE entry`
        : `account ${a.id}: EXPIRE entries, but its expiry is not recorded`,
    );
  }
  if (recorded) {
    const left = big(a.total) - big(a.used) - big(a.frozen) - big(ledger?.expired);
    if (left !== 0n) problems.push(`account ${a.id}: expired, but ${left} is available once its EXPIRE entries are counted`);
  }
  return problems;
}

/** The statuses each kind of transaction can have. */
const STATUSES_OF_KIND: Readonly<Record<string, readonly string[]>> = {
  DEDUCT: ["DEDUCTED"],
  FREEZE: ["FROZEN", "CONSUMED", "UNFROZEN"],
};

/** What a transaction's kind, status and stored amounts get wrong against its allocations and ledger entries. */
function transactionProblems(t: TransactionFigures, ledger: TransactionLedger | undefined): string[] {
  const problems: string[] = [];
  const name = transactionName(t.project_id, t.transaction_id);
  const expect = (what: string, actual: bigint, wanted: bigint) => {
    if (actual !== wanted) problems.push(`${name}: ${what} is ${actual}, expected ${wanted}`);
  };
  const kind = String(t.kind);
  const statuses = STATUSES_OF_KIND[kind];
  if (statuses === undefined || !statuses.includes(String(t.status))) problems.push(`${name}: status ${t.status} for kind ${t.kind}`);
  expect("allocated", big(t.allocated), big(t.amount));
  expect("ledger deduct", big(ledger?.deducted), kind === "DEDUCT" ? big(t.amount) : 0n);
  expect("ledger freeze", big(ledger?.held), kind === "FREEZE" ? big(t.amount) : 0n);
  expect("ledger consume", big(ledger?.consumed), big(t.consumed_amount));
  expect("ledger overage", big(ledger?.overage), big(t.overage_amount));
  expect("ledger unfreeze", big(ledger?.returned), big(t.returned_amount));
  expect("ledger refund", big(ledger?.refunded), big(t.refunded_amount));
  if (t.status === "FROZEN" || t.status === "DEDUCTED") expect("settled amounts", big(t.consumed_amount) + big(t.returned_amount), 0n);
  if (t.status === "UNFROZEN") expect("consumed amount", big(t.consumed_amount), 0n);
  if (t.status === "CONSUMED" || t.status === "UNFROZEN") {
    expect("consumed + returned - overage", big(t.consumed_amount) + big(t.returned_amount) - big(t.overage_amount), big(t.amount));
  }
  return problems;
}

/**
 * Recomputes every account from the append-only ledger and checks the design's invariants:
 * total = Σ DEPOSIT − Σ VOID; used = Σ DEDUCT + Σ CONSUME − Σ REFUND; frozen = Σ FREEZE
 * − Σ CONSUME (not overage) − Σ UNFREEZE; an account's expiry is recorded if and only if it has
 * an EXPIRE entry, and then nothing is available once its EXPIRE entries are counted; each
 * transaction's status fits its kind and its entries add up to what it reports (charged, consumed,
 * returned, refunded), account by account to its allocation; a charge's refunds never exceed it,
 * in all or per account; a deposit's voids never exceed it; every entry lies on an account and
 * under a transaction of its own customer, and every write has its stored outcome
 * (verify-links.ts); every customer's ledger is numbered without a gap and each entry's
 * balance_after follows from the one before (verify-positions.ts); the kept events agree with the
 * ledger (verify-events.ts). Every difference is one line in `problems`. The ledger is read in
 * grouped scans and matched in memory (memory grows with accounts and transactions, not ledger
 * rows), all of it in one snapshot, so it may run while the service writes.
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
  const names = new Map(transactions.map((t) => [key(t.id), transactionName(t.project_id, t.transaction_id)]));
  for (const t of transactions) {
    problems.push(...transactionProblems(t, byTransaction.get(key(t.id))));
    byTransaction.delete(key(t.id));
  }
  for (const orphan of byTransaction.keys()) problems.push(`ledger entries reference missing transaction pk ${orphan}`);
  for (const r of await overRefundedAccounts(db)) {
    const name = names.get(key(r.transaction_pk)) ?? `missing transaction pk ${r.transaction_pk}`;
    problems.push(`${name}: refunded ${r.refunded} to account ${r.account_id}, which gave ${r.charged}`);
  }
  for (const v of await unsoundVoids(db)) {
    const what = v.operation === null ? "no entry" : v.operation === "DEPOSIT" ? `a deposit of ${v.deposited}` : `a ${v.operation} entry`;
    problems.push(
      `voids of record ${v.record_id}: ${v.voided} voided from account ${v.account_id}, against ${what} to account ${v.deposit_account_id ?? "none"}`,
    );
  }
  problems.push(...(await verifyLinks(db)));
  problems.push(...(await verifyLedgerPositions(db)));
  const feed = await verifyEvents(db);
  problems.push(...feed.problems);
  const pools = await verifyPools(db);
  problems.push(...pools.problems);
  return { accounts: accounts.length, ledgerEntries, transactions: transactions.length, events: feed.events, pools: pools.pools, problems };
}
