import { type EntryAccount, LEDGER_START, type LedgerPosition, nextPosition } from "../domain/ledger-position.js";
import { OPERATIONS, type Operation } from "../domain/types.js";
import type { Reader } from "../store/database.js";
import { bigOfRow as big, customerLedgerPositions, customerNames, ledgerPositionsPage, type VerifyRow } from "../store/verify-store.js";
import { entries } from "./verify-links.js";

/** Entries read per page: the walk holds one page and one customer's accounts in memory. */
const PAGE_ENTRIES = 10_000;

/** An account's figures after an entry, by the ledger equations; an EXPIRE removes it from balance_after. */
function accountAfter(account: EntryAccount, operation: Operation, amount: bigint, overage: boolean): EntryAccount {
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

/** A problem of one customer's ledger, worded once its customer's public id is known. */
type CustomerProblem = { readonly customerPk: string; readonly say: (customer: string) => string };

/** One customer's walk: where its ledger stands, its accounts so far, its out-of-line entries. */
interface Walk {
  readonly customerPk: string;
  position: LedgerPosition;
  readonly accounts: Map<string, EntryAccount>;
  /** The first entry out of line, said in full; the ones after it are counted. */
  first: CustomerProblem | null;
  more: number;
}

/**
 * Walks every customer's ledger in sequence order and checks that sequences run 1, 2, … without
 * a gap, that each entry's balance_after follows from the one before it (domain/ledger-position.ts),
 * that each customer row carries its last entry's position, and that every ledger's customer
 * exists. The first entry out of line of a customer is one line, the ones after it a count: the
 * walk goes on from each entry as stored, so a lost entry or an altered amount is one finding, an
 * altered balance_after two (it and the entry after it), and another one further on is counted.
 */
export async function verifyLedgerPositions(db: Reader): Promise<string[]> {
  const problems: CustomerProblem[] = [];
  const last = await walkLedgers(db, problems);
  for (const c of await customerLedgerPositions(db)) {
    const expected = last.get(String(c.id)) ?? LEDGER_START;
    last.delete(String(c.id));
    const stored = { sequence: big(c.ledger_sequence), total: big(c.ledger_total), used: big(c.ledger_used), frozen: big(c.ledger_frozen) };
    if (!samePosition(stored, expected)) {
      problems.push({
        customerPk: String(c.id),
        say: (name) => `${name}: ledger position ${show(stored)}, its entries say ${show(expected)}`,
      });
    }
  }
  for (const [pk, position] of last) {
    problems.push({ customerPk: pk, say: (name) => `${name}: ${entries(position.sequence.toString())} of a customer that does not exist` });
  }
  const names = new Map(
    (await customerNames(db, [...new Set(problems.map((p) => BigInt(p.customerPk)))])).map((c) => [
      String(c.id),
      `customer ${c.customer_id} (project ${c.project_id})`,
    ]),
  );
  return problems.map((p) => p.say(names.get(p.customerPk) ?? `customer pk ${p.customerPk}`));
}

/** Every customer's entries in order, page by page: each checked, and each customer's last position. */
async function walkLedgers(db: Reader, problems: CustomerProblem[]): Promise<Map<string, LedgerPosition>> {
  const last = new Map<string, LedgerPosition>();
  let walk = null as Walk | null;
  let after = { customerPk: 0n, sequence: 0n };
  for (let more = true; more; ) {
    const page = await ledgerPositionsPage(db, after, PAGE_ENTRIES);
    for (const row of page) {
      const pk = String(row.customer_pk);
      if (walk?.customerPk !== pk) {
        if (walk) endWalk(walk, last, problems);
        walk = { customerPk: pk, position: LEDGER_START, accounts: new Map(), first: null, more: 0 };
      }
      checkEntry(row, walk);
    }
    const tail = page[page.length - 1];
    more = tail !== undefined && page.length === PAGE_ENTRIES;
    if (tail) after = { customerPk: big(tail.customer_pk), sequence: big(tail.sequence) };
  }
  if (walk) endWalk(walk, last, problems);
  return last;
}

function endWalk(walk: Walk, last: Map<string, LedgerPosition>, problems: CustomerProblem[]): void {
  last.set(walk.customerPk, walk.position);
  if (walk.first) problems.push(walk.first);
  const more = walk.more;
  if (more > 0)
    problems.push({
      customerPk: walk.customerPk,
      say: (name) => `${name}: ${entries(more, "more")} out of line after that`,
    });
}

function checkEntry(row: VerifyRow, walk: Walk): void {
  const outOfLine = (say: (customer: string) => string) => {
    if (walk.first === null) walk.first = { customerPk: walk.customerPk, say };
    else walk.more++;
  };
  const stored = {
    sequence: big(row.sequence),
    total: big(row.balance_total),
    used: big(row.balance_used),
    frozen: big(row.balance_frozen),
  };
  const operation = OPERATIONS.find((o) => o === row.operation);
  if (operation === undefined) {
    outOfLine((name) => `ledger entry ${row.id} of ${name}: unknown operation ${String(row.operation)}`);
    walk.position = stored;
    return;
  }
  const accountKey = String(row.account_id);
  const account = walk.accounts.get(accountKey) ?? { total: 0n, used: 0n, frozen: 0n, removed: false };
  const amount = big(row.amount);
  const overage = Number(row.overage) === 1;
  const line = { operation, accountId: big(row.account_id), amount, creditType: "", source: "", overage };
  const expected = nextPosition(walk.position, line, account);
  if (stored.sequence !== expected.sequence) {
    outOfLine((name) => `ledger entry ${row.id} of ${name}: sequence ${stored.sequence}, expected ${expected.sequence}`);
  } else if (!samePosition(stored, expected)) {
    outOfLine((name) => `ledger entry ${row.id} of ${name}: balance_after ${show(stored)}, the entries before it say ${show(expected)}`);
  }
  walk.accounts.set(accountKey, account.removed ? account : accountAfter(account, operation, amount, overage));
  walk.position = stored;
}

const samePosition = (a: LedgerPosition, b: LedgerPosition) =>
  a.sequence === b.sequence && a.total === b.total && a.used === b.used && a.frozen === b.frozen;

const show = (p: LedgerPosition) => `#${p.sequence} (total ${p.total}, used ${p.used}, frozen ${p.frozen})`;
