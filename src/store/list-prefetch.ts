import { type SQL, sql } from "./sql.js";
import { type CustomerRef, customerKey, type HoldRef, holdKey } from "../domain/customer-ref.js";
import { SPEND_ACCOUNTS_LOCKED_FIRST } from "../domain/limits.js";
import { accountKeyOf } from "../domain/plans/deposit-plan.js";
import {
  type CreditWrite,
  type CustomerState,
  customerRefOf,
  type HoldState,
  type ListState,
  NO_AVAILABLE,
  outcomeRefOf,
  projectOfWrite,
  selectionKey,
} from "../domain/plans/write-list.js";
import type { AccountSnapshot, Balance } from "../domain/types.js";
import { compareSpendingOrder, NO_BALANCE } from "../domain/account-status.js";
import {
  accountFromRow,
  CUSTOMER_LOCKED_COLUMNS,
  activeBalancesSql,
  accountsOfCustomersSql,
  ledgerPositionFromRow,
  expiryRecordedIdsFromRows,
  type LockedCustomerRow,
  lockAccountByKeySql,
  lockAllSpendableSql,
  lockCustomersSql,
  inactiveBalancesSql,
  lockedCustomerFromRow,
  lockFirstSpendableSql,
  type SpendSelectionGroup,
  lockUnrecordedAccountsSql,
  balanceFromRow,
} from "./accounts-store.js";
import { createCustomerSql, customerPkSql } from "./customers-store.js";
import {
  availableBalancesFromRows,
  availableByCustomerAndCreditTypeSql,
  type ListAlerts,
  listAlertsFromRows,
  prefetchListAlertsSql,
} from "./alerts-store.js";
import { findOutcomesSql, outcomesFromRows } from "./outcomes-store.js";
import type { ReversalState } from "../domain/plans/reversal-state.js";
import { reversalCustomerPksSql, reversalStatements, reversalsFromRows } from "./reversal-prefetch.js";
import { bigOf, boolOf, stringOf } from "./row-values.js";
import { type Batch, headerOf, mapBatch, namedBatch, type Row, rowsOf, type StatementResult, writesOnly } from "./run-transaction.js";
import { customers } from "./schema.js";
import {
  allocationFromRow,
  countAllocationAccountsSql,
  findTransactionSql,
  lockAllocationAccountsSql,
  lockHoldsWithAllocationsSql,
  transactionCustomerPkSql,
  transactionFromRow,
} from "./transactions-store.js";
import { appendTo } from "../domain/collections.js";

// The prefetch of the one write pipeline: for a list of writes, in one round trip, every
// customer it touches locked in ascending primary key (with its ledger position), deposits'
// missing customers created, what the customers' accounts between states hold (their balances
// are their positions less that), the holds it settles locked with their allocation and accounts, the first
// spendable accounts of each spend's selection, each deposit's account; then, under those locks,
// the stored outcomes of its keys, so a replay is decided by what the lock holder committed.

/** A customer as the prefetch assembles it from the statements' rows. */
interface Assembling {
  row: LockedCustomerRow;
  readonly accounts: Map<bigint, AccountSnapshot>;
  readonly expiryRecorded: Set<bigint>;
  readonly selectionsRead: Map<string, AccountSnapshot | null>;
  created: boolean;
}

/** A locked customer with nothing read of its accounts yet. */
const assemblingOf = (row: LockedCustomerRow): Assembling => ({
  row,
  accounts: new Map(),
  expiryRecorded: new Set(),
  selectionsRead: new Map(),
  created: false,
});

function uniqueBy<T>(items: readonly T[], key: (item: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const item of items) if (!seen.has(key(item))) seen.set(key(item), item);
  return [...seen.values()];
}

/** The selections of credit types the list's spends use, per customer. */
function spendSelectionsOf(writes: readonly CreditWrite[]) {
  const spends = writes.flatMap((w) => (w.kind === "spend" ? [w.request] : []));
  return uniqueBy(
    spends.map((r) => ({ ref: { projectId: r.projectId, customerId: r.customerId }, creditTypes: r.creditTypes })),
    (s) => `${customerKey(s.ref)}|${selectionKey(s.creditTypes)}`,
  );
}

/** The list's selections grouped by credit types, for one statement (lockFirstSpendableSql). */
function selectionGroupsOf(selections: ReturnType<typeof spendSelectionsOf>): SpendSelectionGroup[] {
  const groups = new Map<string, { creditTypes: readonly string[]; customers: CustomerRef[] }>();
  for (const s of selections) {
    const key = selectionKey(s.creditTypes);
    const group = groups.get(key) ?? { creditTypes: s.creditTypes, customers: [] };
    group.customers.push(s.ref);
    groups.set(key, group);
  }
  return [...groups.values()];
}

/**
 * Adds the spendable accounts read to their customers, and what each selection read: all of its
 * accounts when fewer than the limit match it, else its first ones up to the limit-th (the rows
 * of the other selections that match it all come later: its own read returned its first ones).
 */
function addSelectionsRead(
  selections: ReturnType<typeof spendSelectionsOf>,
  rows: readonly Row[],
  customerOf: (ref: CustomerRef) => Assembling | undefined,
): void {
  for (const s of selections) {
    const c = customerOf(s.ref);
    if (!c) continue;
    const own = rows.filter((row) => bigOf(row.a_customer_pk) === c.row.pk);
    addAccounts(c, own);
    const matching = own
      .flatMap((row) => {
        const account = accountFromRow(row);
        return account && (s.creditTypes.length === 0 || s.creditTypes.includes(account.creditType)) ? [account] : [];
      })
      .sort(compareSpendingOrder);
    const last = matching[SPEND_ACCOUNTS_LOCKED_FIRST - 1];
    c.selectionsRead.set(selectionKey(s.creditTypes), matching.length < SPEND_ACCOUNTS_LOCKED_FIRST || !last ? null : last);
  }
}

/**
 * Lock, then read, everything a list of a caller's writes decides from (see above). The alerts of
 * the named customers `alertsLikely` says have some are read in the same round trip; a customer
 * found to have alerts without them read is completed by prefetchAlerts.
 */
export function prefetchList(
  writes: readonly CreditWrite[],
  nowMs: number,
  alertsLikely: (ref: CustomerRef) => boolean = () => false,
  options: { lockWait?: LockWaitBound } = {},
): Batch<ListState> {
  const named = uniqueBy(
    writes.flatMap((w) => {
      const ref = customerRefOf(w);
      return ref ? [ref] : [];
    }),
    customerKey,
  );
  const holds = uniqueBy(
    writes.flatMap((w) => (w.kind === "consume" || w.kind === "unfreeze" ? [w.request as HoldRef] : [])),
    holdKey,
  );
  const deposits = writes.flatMap((w) => (w.kind === "deposit" ? [w.request] : []));
  const depositCustomers = uniqueBy(deposits, customerKey);
  const selections = spendSelectionsOf(writes);
  const keys = writes.flatMap((w) => {
    const ref = outcomeRefOf(w);
    return ref ? [ref] : [];
  });
  const pks = [
    ...named.map((r) => customerPkSql(r.projectId, r.customerId)),
    ...holds.map((h) => transactionCustomerPkSql(h.projectId, h.transactionId)),
    ...reversalCustomerPksSql(writes),
  ];
  const bound = options.lockWait;
  const pkOf = (ref: CustomerRef) => customerPkSql(ref.projectId, ref.customerId);
  const alertsRead = named.filter(alertsLikely);
  const batch = namedBatch({
    // The bound covers every wait for a customer: its lock, and its UNIQUE key when another
    // transaction is creating it.
    lockWaitBounded: bound ? [lockWaitTimeoutSql(bound.boundS)] : [],
    customers: pks.length === 0 ? [] : [lockCustomersSql(pks)],
    created: depositCustomers.map((d) => createCustomerSql(d.projectId, { ...d, nowMs })),
    depositCustomers: depositCustomers.length === 0 ? [] : [lockCustomersSql(depositCustomers.map(pkOf))],
    // After every customer is locked (and a deposit's created): the balances read under the locks.
    inactive: pks.length === 0 ? [] : [inactiveBalancesSql(writes.map(projectOfWrite), pks, nowMs)],
    lockWaitRestored: bound ? [lockWaitTimeoutSql(bound.restoreS)] : [],
    holds: holds.length === 0 ? [] : [lockHoldsWithAllocationsSql(holds)],
    spendable: selections.length === 0 ? [] : [lockFirstSpendableSql(selectionGroupsOf(selections), nowMs, SPEND_ACCOUNTS_LOCKED_FIRST)],
    depositAccounts: deposits.map((d) => lockAccountByKeySql(d.projectId, pkOf(d), accountKeyOf(d))),
    ...reversalStatements(writes),
    ...prefetchListAlertsSql(alertsRead, nowMs),
    outcomes: keys.length === 0 ? [] : [findOutcomesSql(keys)],
  });
  return mapBatch(batch, (r) => {
    const { found, byRef } = lockedCustomersOf([...r.customers, ...r.depositCustomers].flatMap(rowsOf), rowsOf(r.inactive[0] ?? []));
    depositCustomers.forEach((d, i) => {
      const pk = byRef.get(customerKey(d));
      const c = pk === undefined ? undefined : found.get(pk);
      if (c && headerOf(r.created[i]).affectedRows === 1) c.created = true;
    });
    const holdStates = holdsFromRows(rowsOf(r.holds[0] ?? []), found);
    addSelectionsRead(selections, rowsOf(r.spendable[0] ?? []), (ref) => found.get(byRef.get(customerKey(ref)) ?? -1n));
    deposits.forEach((d, i) => {
      const c = found.get(byRef.get(customerKey(d)) ?? -1n);
      if (c) addAccounts(c, rowsOf(r.depositAccounts[i]));
    });
    const withAlerts = alertsOf(r, alertsRead);
    return {
      ...reversalsOf(writes, r, found),
      customers: new Map([...found].map(([pk, c]) => [pk, withAlerts(c)])),
      customerPks: byRef,
      holds: holdStates,
      outcomes: outcomesFromRows(rowsOf(r.outcomes[0] ?? [])),
      busy: new Set(),
    };
  });
}

/**
 * How long a list waits for its customers' locks (group commit's: ListOptions.setAsideHeld),
 * and the connection's own lock wait, set back right after them. In seconds, as the server takes it.
 */
export interface LockWaitBound {
  readonly boundS: number;
  readonly restoreS: number;
}

/**
 * The connection's lock wait, as MySQL and MariaDB both take it (MariaDB's `FOR UPDATE WAIT n` is
 * its own). A batch that failed before its restoring statement leaves it bounded: the caller sets
 * it back (lockWaitRestoredBatch) before the connection does anything else.
 */
const lockWaitTimeoutSql = (seconds: number): SQL => sql`SET SESSION innodb_lock_wait_timeout = ${seconds}`;

/** Sets the connection's lock wait back to `seconds`: after a bounded prefetch that failed. */
export const lockWaitRestoredBatch = (seconds: number): Batch<void> => writesOnly([lockWaitTimeoutSql(seconds)]);

/**
 * The customers a write locks, as prefetchList names them: the one it names, the owner of the
 * hold it settles, the owner of the charge it refunds (scalar subqueries; NULL for none yet).
 */
function customerPksOfWrite(write: CreditWrite): SQL[] {
  const named = customerRefOf(write);
  const pks = named ? [customerPkSql(named.projectId, named.customerId)] : [];
  if (write.kind === "consume" || write.kind === "unfreeze" || write.kind === "refund") {
    pks.push(transactionCustomerPkSql(write.request.projectId, write.request.transactionId));
  }
  return pks;
}

/** Who holds back each write of a list (busyWritesSql), by the write's index. */
export interface ListOwners {
  /** Writes locking a customer another transaction holds: the first such customer's pk. */
  readonly held: ReadonlyMap<number, bigint>;
  /** Writes naming a customer that has no committed row (a first deposit, possibly being created by another transaction). */
  readonly unresolved: ReadonlySet<number>;
}

/**
 * Which writes of a list wait for a held customer, in one round trip (none, null, for a list that
 * locks no customer). Their customers are found by the same subqueries as prefetchList's, read
 * plainly. Held means one of `known` (customers the caller knows another transaction holds), or,
 * with `lockOthers` (after the list's bounded wait for its customers ran out), one that this
 * round trip could not lock: it locks, without waiting, every other customer of the list, and
 * also tells which writes name a customer with no committed row (another transaction may be
 * creating it: its UNIQUE key then makes the creating deposit wait). Known customers are never
 * locked here.
 */
export function busyWritesSql(
  writes: readonly CreditWrite[],
  probe: { readonly known: ReadonlySet<bigint>; readonly lockOthers: boolean },
): Batch<ListOwners> | null {
  const owners = writes.flatMap((write, index) => customerPksOfWrite(write).map((pk) => sql`SELECT ${index} AS w, ${pk} AS pk`));
  if (owners.length === 0) return null;
  const notKnown =
    probe.known.size === 0
      ? sql``
      : sql` AND c.id NOT IN (${sql.join(
          [...probe.known].map((pk) => sql`${pk}`),
          sql`, `,
        )})`;
  const lockFree = probe.lockOthers
    ? [
        sql`SELECT c.id AS pk FROM ${customers} c WHERE c.id IN (${sql.join(writes.flatMap(customerPksOfWrite), sql`, `)})${notKnown} FOR UPDATE SKIP LOCKED`,
      ]
    : [];
  const batch = namedBatch({ locked: lockFree, owners: [sql`SELECT o.w, o.pk FROM (${sql.join(owners, sql` UNION ALL `)}) o`] });
  return mapBatch(batch, (r) => {
    const locked = new Set(r.locked.length === 0 ? [] : rowsOf(r.locked[0]).map((row) => bigOf(row.pk)));
    const isHeld = (pk: bigint) => probe.known.has(pk) || (probe.lockOthers && !locked.has(pk));
    const held = new Map<number, bigint>();
    const unresolved = new Set<number>();
    for (const row of rowsOf(r.owners[0])) {
      const index = Number(bigOf(row.w));
      if (row.pk == null) unresolved.add(index);
      else if (isHeld(bigOf(row.pk)) && !held.has(index)) held.set(index, bigOf(row.pk));
    }
    return { held, unresolved };
  });
}

/** The list's reversals (reversal-prefetch.ts; absent when it has none), their accounts added to their customers. */
function reversalsOf(
  writes: readonly CreditWrite[],
  results: Parameters<typeof reversalsFromRows>[1],
  found: ReadonlyMap<bigint, Assembling>,
): { reversals?: ReversalState } {
  const reversals = reversalsFromRows(writes, results, (pk, rows) => {
    const c = found.get(pk);
    if (c) addAccounts(c, rows);
  });
  return reversals ? { reversals } : {};
}

/**
 * The locked customers by pk (a customer read twice keeps its later row), each with its balance
 * from its `inactive` row, and their pks by customerKey.
 */
function lockedCustomersOf(rows: readonly Row[], inactive: readonly Row[]) {
  const inactiveOf = new Map(inactive.map((row) => [bigOf(row.customer_pk), row]));
  const found = new Map<bigint, Assembling>();
  const byRef = new Map<string, bigint>();
  for (const row of rows) {
    const locked = lockedCustomerFromRow(row, inactiveOf.get(bigOf(row.c_pk)));
    const known = found.get(locked.pk);
    if (known) known.row = locked;
    else found.set(locked.pk, assemblingOf(locked));
    byRef.set(customerKey(locked), locked.pk);
  }
  return { found, byRef };
}

/** A customer's state, with its alerts and the balances they watch when they were read (`read`). */
function alertsOf(
  results: Record<"alerts" | "alertBalances", readonly StatementResult[]>,
  read: readonly CustomerRef[],
): (c: Assembling) => CustomerState {
  const alerts = results.alerts.length === 0 ? null : listAlertsFromRows(rowsOf(results.alerts[0]), rowsOf(results.alertBalances[0]));
  const readKeys = new Set(read.map(customerKey));
  return (c) => {
    const key = customerKey(c.row);
    if (!alerts || !readKeys.has(key)) return customerStateOf(c);
    return withAlertsRead(customerStateOf(c), alerts);
  };
}

const withAlertsRead = (c: CustomerState, read: ListAlerts): CustomerState => {
  const key = customerKey(c.ref);
  return { ...c, alerts: read.alerts.get(key) ?? [], available: read.available.get(key) ?? NO_AVAILABLE, alertsRead: true };
};

/**
 * The alerts, locked, and the balances they watch of customers the list has locked already (the
 * flag read with their lock said they have some): one more round trip, only for those.
 */
export function prefetchAlerts(state: ListState, missing: readonly CustomerState[], nowMs: number): Batch<ListState> {
  const refs = missing.map((c) => c.ref);
  return mapBatch(namedBatch(prefetchListAlertsSql(refs, nowMs)), (r) => {
    const read = listAlertsFromRows(rowsOf(r.alerts[0]), rowsOf(r.alertBalances[0]));
    const customersNow = new Map(state.customers);
    for (const c of missing) customersNow.set(c.pk, withAlertsRead(c, read));
    return { ...state, customers: customersNow };
  });
}

function addAccounts(c: Assembling, rows: readonly Row[]): void {
  for (const row of rows) {
    const account = accountFromRow(row);
    if (account) c.accounts.set(account.id, account);
  }
  for (const id of expiryRecordedIdsFromRows(rows)) c.expiryRecorded.add(id);
}

const customerStateOf = (c: Assembling): CustomerState => ({
  pk: c.row.pk,
  ref: { projectId: c.row.projectId, customerId: c.row.customerId },
  before: c.row.before,
  accounts: c.accounts,
  expiryRecorded: c.expiryRecorded,
  selectionsRead: c.selectionsRead,
  allSpendable: false,
  created: c.created,
  ledger: c.row.ledger,
  hasAlerts: c.row.hasAlerts,
  alerts: [],
  available: NO_AVAILABLE,
  alertsRead: false,
});

/**
 * Holds by holdKey with their allocation in order (lockHoldsWithAllocationsSql: a row per part);
 * their accounts go to their customers.
 */
function holdsFromRows(rows: readonly Row[], found: Map<bigint, Assembling>): Map<string, HoldState> {
  const rowsByHold = new Map<bigint, Row[]>();
  for (const row of rows) {
    const pk = bigOf(row.id);
    appendTo(rowsByHold, pk, row);
  }
  const states = new Map<string, HoldState>();
  for (const holdRows of rowsByHold.values()) {
    const first = holdRows[0];
    const hold = transactionFromRow(first);
    if (!first || !hold) continue;
    const parts = holdRows.filter((row) => row.al_transaction_pk != null);
    const owner = found.get(hold.customerPk);
    if (owner) addAccounts(owner, parts);
    states.set(holdKey({ projectId: bigOf(first.project_id), transactionId: stringOf(first.transaction_id) }), {
      hold,
      parts: parts.map(allocationFromRow),
    });
  }
  return states;
}

/** The rest of these customers' spendable accounts (all types), when the first ones did not decide a write. */
export function prefetchMore(state: ListState, customerPks: readonly bigint[], nowMs: number): Batch<ListState> {
  const wanted = customerPks.flatMap((pk) => {
    const c = state.customers.get(pk);
    return c ? [{ projectId: c.ref.projectId, pk }] : [];
  });
  if (wanted.length === 0) throw new Error("more state asked for customers the prefetch did not lock");
  return mapBatch(namedBatch({ spendable: [lockAllSpendableSql(wanted, nowMs)] }), (r) => {
    const rows = rowsOf(r.spendable[0]);
    const customersNow = new Map(state.customers);
    for (const { pk } of wanted) {
      const c = customersNow.get(pk);
      if (c) customersNow.set(pk, withAllSpendable(c, rows));
    }
    return { ...state, customers: customersNow };
  });
}

/** The customer with every spendable account of its in `rows` (rows of several customers). */
function withAllSpendable(c: CustomerState, rows: readonly Row[]): CustomerState {
  const accounts = new Map(c.accounts);
  for (const row of rows) {
    const account = bigOf(row.a_customer_pk) === c.pk ? accountFromRow(row) : null;
    if (account) accounts.set(account.id, account);
  }
  return { ...c, accounts, allSpendable: true };
}

/** A customer locked by pk without waiting (the sweeper): no row when another transaction holds it. */
const lockCustomerNowaitSql = (pk: SQL): SQL =>
  sql`SELECT c.id AS c_pk, c.project_id AS c_project_id, c.customer_id AS c_customer_id, ${CUSTOMER_LOCKED_COLUMNS}
    FROM ${customers} c WHERE c.id = ${pk} FOR UPDATE SKIP LOCKED`;

/** The ledger positions of customers this transaction has locked already (read for every one listed; the busy ones' are not used). */
const customerLedgersSql = (pks: readonly bigint[]): SQL =>
  sql`SELECT c.id AS c_pk, c.customer_id AS c_customer_id, ${CUSTOMER_LOCKED_COLUMNS} FROM ${customers} c WHERE c.id IN (${sql.join(
    pks.map((pk) => sql`${pk}`),
    sql`, `,
  )})`;

/**
 * The sweeper's prefetch (automatic settlements, or records of accounts, of one customer or many):
 * the same state, but nothing is waited for. A row locked elsewhere is missing from the result and
 * its customer is `busy`; the balance is then a plain sum (a sum that skips locked rows would be wrong).
 */
export function prefetchSkipLocked(writes: readonly CreditWrite[], nowMs: number): Batch<ListState> {
  const [write] = writes;
  return write?.kind === "expire" || write?.kind === "start" ? prefetchAccountRecords(writes, nowMs) : prefetchSettlements(writes, nowMs);
}

/**
 * The sweeper's settlements of due holds, one or many, in one round trip: for each hold its
 * customer (locked), then the ACTIVE balances of all their customers (one statement, a customer
 * with several holds summed once), each hold and its allocation's accounts (locked), and how many
 * accounts the allocation names; then the stored outcomes of every hold's key, under those locks.
 */
function prefetchSettlements(writes: readonly CreditWrite[], nowMs: number): Batch<ListState> {
  const holds = writes.map((w) => {
    if (w.kind !== "consume" && w.kind !== "unfreeze") {
      throw new Error("only the sweeper's writes skip locked rows: settlements, or records of accounts");
    }
    return w.request;
  });
  const each = (statement: (projectId: bigint, transactionId: string) => SQL) => holds.map((h) => statement(h.projectId, h.transactionId));
  const keys = writes.flatMap((w) => outcomeRefOf(w) ?? []);
  const batch = namedBatch({
    customer: each((projectId, transactionId) => lockCustomerNowaitSql(transactionCustomerPkSql(projectId, transactionId))),
    totals: [
      activeBalancesSql(
        accountsOfCustomersSql(
          holds.map((h) => ({ projectId: h.projectId, customerPk: transactionCustomerPkSql(h.projectId, h.transactionId) })),
        ),
        nowMs,
      ),
    ],
    hold: each((projectId, transactionId) => findTransactionSql(projectId, transactionId, { lock: true, skipLocked: true })),
    allocation: each((projectId, transactionId) => lockAllocationAccountsSql(projectId, transactionId, { skipLocked: true })),
    allocated: each((projectId, transactionId) => countAllocationAccountsSql(projectId, transactionId)),
    outcomes: keys.length > 0 ? [findOutcomesSql(keys)] : [],
  });
  return mapBatch(batch, (r) => settlementsStateOf(holds, r));
}

/**
 * The sweeper's state of its settlements: a hold's customer busy when it or one of the hold's
 * accounts is locked elsewhere; a customer with several due holds read once, with every one's accounts.
 */
function settlementsStateOf(
  holdRefs: readonly HoldRef[],
  r: Record<"customer" | "totals" | "hold" | "allocation" | "allocated" | "outcomes", StatementResult[]>,
): ListState {
  const holds = new Map<string, HoldState>();
  const assembled = new Map<bigint, Assembling>();
  const busy = new Set<bigint>();
  const totals = rowsByCustomer(rowsOf(r.totals[0]), "customer_pk");
  holdRefs.forEach((hold, i) => {
    const customerRow = rowsOf(r.customer[i])[0];
    const found = transactionFromRow(rowsOf(r.hold[i])[0]);
    if (!found) return;
    const allocationRows = rowsOf(r.allocation[i]);
    const accountsRead = allocationRows.filter((row) => row.a_id != null).length;
    holds.set(holdKey(hold), { hold: found, parts: allocationRows.map(allocationFromRow) });
    if (!customerRow || accountsRead < Number(rowsOf(r.allocated[i])[0]?.accounts ?? 0)) busy.add(found.customerPk);
    if (!customerRow) return;
    const c =
      assembled.get(found.customerPk) ??
      assemblingOf({
        ...lockedRefOf(customerRow),
        before: balanceOf(totals.get(found.customerPk)),
        ledger: ledgerPositionFromRow(customerRow),
        hasAlerts: boolOf(customerRow.c_has_alerts),
      });
    addAccounts(c, allocationRows);
    assembled.set(found.customerPk, c);
  });
  const customersFound = new Map([...assembled].map(([pk, c]) => [pk, customerStateOf(c)] as const));
  return { customers: customersFound, customerPks: new Map(), holds, outcomes: outcomesFromRows(rowsOf(r.outcomes[0] ?? [])), busy };
}

const lockedRefOf = (row: Row) => ({ pk: bigOf(row.c_pk), projectId: bigOf(row.c_project_id), customerId: stringOf(row.c_customer_id) });

/**
 * The sweeper's records of accounts (expiries, or starts) of one customer or many, in one round
 * trip: each customer locked with those of its listed accounts whose expiry (or start) is still
 * unrecorded, SKIP LOCKED (a statement per customer, so that its accounts are locked only once
 * it is); then, one statement each for all of them, their ledger positions, their ACTIVE
 * balances and, for starts, what the starting credits bring per credit type. A customer another
 * transaction holds is `busy`.
 */
function prefetchAccountRecords(writes: readonly CreditWrite[], nowMs: number): Batch<ListState> {
  const recorded = writes[0]?.kind === "start" ? "start" : "expiry";
  const listed = new Map<bigint, { readonly projectId: bigint; readonly customerPk: bigint; readonly accountIds: bigint[] }>();
  for (const w of writes) {
    if (w.kind !== (recorded === "start" ? "start" : "expire"))
      throw new Error("a sweeper's list of account records holds one kind of record");
    const { projectId, customerPk, accountId } = w.account;
    const customer = listed.get(customerPk) ?? { projectId, customerPk, accountIds: [] };
    customer.accountIds.push(accountId);
    listed.set(customerPk, customer);
  }
  const customersListed = [...listed.values()].sort((a, b) => (a.customerPk < b.customerPk ? -1 : 1));
  const scope = accountsOfCustomersSql(customersListed);
  const batch = namedBatch({
    locked: customersListed.map((c) => lockUnrecordedAccountsSql(recorded, c.customerPk, c.accountIds)),
    ledgers: [customerLedgersSql(customersListed.map((c) => c.customerPk))],
    totals: [activeBalancesSql(scope, nowMs)],
    arriving: recorded === "start" ? [availableByCustomerAndCreditTypeSql(scope, nowMs, { startsUnrecorded: true })] : [],
  });
  return mapBatch(batch, (r) => {
    const ledgers = rowsByCustomer(rowsOf(r.ledgers[0]), "c_pk");
    const totals = rowsByCustomer(rowsOf(r.totals[0]), "customer_pk");
    const arriving = rowsByCustomer(recorded === "start" ? rowsOf(r.arriving[0]) : [], "customer_pk");
    const customersRead = new Map<bigint, CustomerState>();
    const busy = new Set<bigint>();
    customersListed.forEach(({ projectId, customerPk }, i) => {
      const rows = rowsOf(r.locked[i]);
      if (rows.length === 0) {
        busy.add(customerPk);
        return;
      }
      const [ledgerRow] = ledgers.get(customerPk) ?? [];
      if (!ledgerRow) throw new Error("a locked customer has no row");
      const c = assemblingOf({
        pk: customerPk,
        projectId,
        customerId: stringOf(ledgerRow.c_customer_id),
        before: balanceOf(totals.get(customerPk)),
        ledger: ledgerPositionFromRow(ledgerRow),
        hasAlerts: boolOf(ledgerRow.c_has_alerts),
      });
      addAccounts(c, rows);
      const state = customerStateOf(c);
      customersRead.set(
        customerPk,
        recorded === "start"
          ? {
              ...state,
              startsUnrecorded: new Set(c.accounts.keys()),
              startsArriving: availableBalancesFromRows(arriving.get(customerPk) ?? []).byCreditType,
            }
          : state,
      );
    });
    return { customers: customersRead, customerPks: new Map(), holds: new Map(), outcomes: new Map(), busy };
  });
}

/** A customer's ACTIVE balance from its activeBalancesSql rows (none: no ACTIVE account). */
const balanceOf = (rows: readonly Row[] | undefined): Balance => {
  const [row] = rows ?? [];
  return row ? balanceFromRow(row) : NO_BALANCE;
};

/** Rows grouped by the customer pk in `column`. */
function rowsByCustomer(rows: readonly Row[], column: string): Map<bigint, Row[]> {
  const grouped = new Map<bigint, Row[]>();
  for (const row of rows) appendTo(grouped, bigOf(row[column]), row);
  return grouped;
}
