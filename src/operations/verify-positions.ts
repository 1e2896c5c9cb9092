import { type EntryAccount, LEDGER_START, type LedgerPosition, nextPosition } from "../domain/ledger-position.js";
import { OPERATIONS } from "../domain/types.js";
import type { Reader } from "../store/database.js";
import { oneOf } from "../store/row-values.js";
import { customerLedgerPositions, ledgerPositionsPage, type VerifyRow } from "../store/verify-store.js";

/** Entries read per page: the walk holds one page and one customer's accounts in memory. */
const PAGE_ENTRIES = 10_000;

const big = (v: string | number | null | undefined): bigint => BigInt(v ?? 0);

/** An account's figures after an entry, by the ledger equations; an EXPIRE removes it from balance_after. */
function accountAfter(account: EntryAccount, operation: string, amount: bigint, overage: boolean): EntryAccount {
  switch (operation) {
    case "DEPOSIT":
      return { ...account, total: account.total + amount };
    case "DEDUCT":
      return { ...account, used: account.used + amount };
    case "FREEZE":
      return { ...account, frozen: account.frozen + amount };
    case "CONSUME":
      return { ...account, used: account.used + amount, frozen: account.frozen - (overage ? 0n : amount) };
    case "UNFREEZE":
      return { ...account, frozen: account.frozen - amount };
    case "REFUND":
      return { ...account, used: account.used - amount };
    case "VOID":
      return { ...account, total: account.total - amount };
    default:
      return { ...account, removed: true };
  }
}

/**
 * Walks every customer's ledger in sequence order and checks that sequences run 1, 2, … without
 * a gap, that each entry's balance_after follows from the one before it (domain/ledger-position.ts),
 * and that each customer row carries its last entry's position.
 */
export async function verifyLedgerPositions(db: Reader): Promise<string[]> {
  const problems: string[] = [];
  const last = await walkLedgers(db, problems);
  for (const c of await customerLedgerPositions(db)) {
    const expected = last.get(String(c.id)) ?? LEDGER_START;
    const stored = { sequence: big(c.ledger_sequence), total: big(c.ledger_total), used: big(c.ledger_used), frozen: big(c.ledger_frozen) };
    if (!samePosition(stored, expected))
      problems.push(`customer ${c.id}: ledger position ${show(stored)}, its entries say ${show(expected)}`);
  }
  return problems;
}

/** Every customer's entries in order, page by page: each checked, and each customer's last position. */
async function walkLedgers(db: Reader, problems: string[]): Promise<Map<string, LedgerPosition>> {
  const last = new Map<string, LedgerPosition>();
  let customer: string | null = null;
  let position = LEDGER_START;
  let accounts = new Map<string, EntryAccount>();
  let after = { customerPk: 0n, sequence: 0n };
  for (let more = true; more; ) {
    const page = await ledgerPositionsPage(db, after, PAGE_ENTRIES);
    for (const row of page) {
      const pk = String(row.customer_pk);
      if (pk !== customer) {
        if (customer !== null) last.set(customer, position);
        [customer, position, accounts] = [pk, LEDGER_START, new Map()];
      }
      position = checkEntry(row, position, accounts, problems);
    }
    const tail = page[page.length - 1];
    more = tail !== undefined && page.length === PAGE_ENTRIES;
    if (tail) after = { customerPk: big(tail.customer_pk), sequence: big(tail.sequence) };
  }
  if (customer !== null) last.set(customer, position);
  return last;
}

function checkEntry(row: VerifyRow, before: LedgerPosition, accounts: Map<string, EntryAccount>, problems: string[]): LedgerPosition {
  const accountKey = String(row.account_id);
  const account = accounts.get(accountKey) ?? { total: 0n, used: 0n, frozen: 0n, removed: false };
  const operation = oneOf(row.operation, OPERATIONS, "operation");
  const amount = big(row.amount);
  const overage = Number(row.overage) === 1;
  const line = { operation, accountId: big(row.account_id), amount, creditType: "", source: "", overage };
  const expected = nextPosition(before, line, account);
  const stored = {
    sequence: big(row.sequence),
    total: big(row.balance_total),
    used: big(row.balance_used),
    frozen: big(row.balance_frozen),
  };
  if (stored.sequence !== expected.sequence) {
    problems.push(`ledger entry ${row.id}: sequence ${stored.sequence}, expected ${expected.sequence} (customer ${row.customer_pk})`);
  } else if (!samePosition(stored, expected)) {
    problems.push(`ledger entry ${row.id}: balance_after ${show(stored)}, the entries before it say ${show(expected)}`);
  }
  accounts.set(accountKey, account.removed ? account : accountAfter(account, operation, amount, overage));
  return stored.sequence === expected.sequence ? stored : expected;
}

const samePosition = (a: LedgerPosition, b: LedgerPosition) =>
  a.sequence === b.sequence && a.total === b.total && a.used === b.used && a.frozen === b.frozen;

const show = (p: LedgerPosition) => `#${p.sequence} (total ${p.total}, used ${p.used}, frozen ${p.frozen})`;
