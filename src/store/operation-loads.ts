import { type SQL, sql } from "drizzle-orm";
import { balanceOf } from "../domain/account-status.js";
import type { IdempotencyEnvelope, OutcomeScope, StoredOutcome } from "../domain/idempotency.js";
import { type GroupHold, type GroupState, outcomeKey } from "../domain/plans/group-plan.js";
import { accountKeyOf, type DepositState } from "../domain/plans/deposit-plan.js";
import type { SettleState } from "../domain/plans/settle-plan.js";
import type { SpendState } from "../domain/plans/spend-plan.js";
import type { DepositRequest, SpendRequest } from "../domain/requests.js";
import type { AccountSnapshot, Balance } from "../domain/types.js";
import {
  accountFromRow,
  accountsFromRows,
  activeBalanceSql,
  balanceFromRow,
  customerTotalsSql,
  expiryRecordedIdsFromRows,
  lockAccountByKeySql,
  lockCustomerSql,
  lockCustomersWithActiveAccountsSql,
  lockCustomerWithBalanceSql,
  lockSpendableAccountsSql,
  NO_BALANCE,
  unexpiredTotalFromRow,
} from "./accounts-store.js";
import { customerByIdSql, customerByPkSql, customerPkSql, upsertCustomerSql } from "./customers-store.js";
import { findOutcomeSql, findOutcomesSql, outcomeFromRow, outcomesFromRows, storedOutcomeKey } from "./outcomes-store.js";
import { bigOf, stringOf } from "./row-values.js";
import { type Batch, batchOf, mapBatch, type Row, rowsOf } from "./run-transaction.js";
import {
  allocationFromRow,
  countAllocationAccountsSql,
  findTransactionSql,
  lockAllocationAccountsSql,
  lockAllocationsOfSql,
  lockHoldsSql,
  transactionCustomerPkSql,
  transactionFromRow,
  transactionOwnerSql,
  type TransactionRow,
} from "./transactions-store.js";

// The first round trip of each write: lock what it changes and read what it decides from. Every
// load takes the customer's row lock first (the order docs/architecture.md relies on), then the
// rows below it: the hold, then accounts.

/**
 * Spendable accounts locked up front, in spending order. Most spends are covered by the first
 * few, so a customer's cost does not grow with its number of accounts; when these fall short,
 * all of them are read (loadAllSpendable, one more round trip).
 */
export const SPEND_ACCOUNTS_LOCKED_FIRST = 16;

/**
 * Deposit: the stored outcome, then the customer created or locked (INSERT … ON DUPLICATE KEY
 * locks it either way), its totals and the account with the deposit's key.
 */
export function loadDeposit(request: DepositRequest, envelope: IdempotencyEnvelope | null, nowMs: number): Batch<DepositState> {
  const { projectId } = request;
  const customer = sql`@customer`;
  const outcome = envelope === null ? [] : [findOutcomeSql(projectId, envelope)];
  return batchOf(
    [
      ...outcome,
      upsertCustomerSql(projectId, { ...request, nowMs }),
      sql`SET @customer = LAST_INSERT_ID()`,
      customerTotalsSql(projectId, customer, nowMs),
      lockAccountByKeySql(projectId, customer, accountKeyOf(request)),
      sql`SELECT @customer AS customer_pk`,
    ],
    (results) => {
      const [outcomeRows, , , totalsRows, accountRows, customerRows] = outcome.length === 0 ? [undefined, ...results] : results;
      const totals = rowsOf(totalsRows)[0];
      return {
        stored: outcomeRows === undefined ? null : outcomeFromRow(rowsOf(outcomeRows)[0]),
        customerPk: bigOf(rowsOf(customerRows)[0]?.customer_pk),
        before: balanceFromRow(totals),
        unexpiredTotal: unexpiredTotalFromRow(totals),
        account: accountsFromRows(rowsOf(accountRows))[0] ?? null,
      };
    },
  );
}

/** Deduct and Freeze: the stored outcome, the customer's lock with its balance, its first spendable accounts. */
export function loadSpend(request: SpendRequest, envelope: IdempotencyEnvelope, nowMs: number): Batch<SpendState> {
  const { projectId } = request;
  const customerPk = customerPkSql(projectId, request.customerId);
  return batchOf(
    [
      findOutcomeSql(projectId, envelope),
      lockCustomerWithBalanceSql(customerByIdSql(projectId, request.customerId), nowMs),
      lockSpendableAccountsSql(projectId, customerPk, nowMs, request.creditTypes, SPEND_ACCOUNTS_LOCKED_FIRST),
    ],
    ([outcomeRows, customerRows, accountRows]) => {
      const customer = rowsOf(customerRows)[0];
      const accounts = accountsFromRows(rowsOf(accountRows));
      return {
        stored: outcomeFromRow(rowsOf(outcomeRows)[0]),
        customerPk: customer ? bigOf(customer.c_pk) : null,
        accounts,
        complete: accounts.length < SPEND_ACCOUNTS_LOCKED_FIRST,
        before: customer ? balanceFromRow(customer) : NO_BALANCE,
      };
    },
  );
}

/** A Deduct or Freeze among others loaded together: its customer and its key. */
export interface SpendKey {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly transactionId: string;
}

/** A Consume or Unfreeze among others loaded together: its hold. */
export interface HoldKey {
  readonly projectId: bigint;
  readonly transactionId: string;
}

/** A customer read with others, with every ACTIVE account. */
export interface CustomerLoaded {
  readonly customerPk: bigint;
  readonly active: AccountSnapshot[];
}

/** What loadTogether read, by `project:customer` (customers), storedOutcomeKey (outcomes), `project:transaction` (settlements). */
export interface TogetherLoaded {
  readonly customers: ReadonlyMap<string, CustomerLoaded>;
  readonly outcomes: ReadonlyMap<string, StoredOutcome>;
  /** The state of each Consume and Unfreeze. */
  readonly settles: ReadonlyMap<string, SettleState>;
}

/**
 * Writes of different customers loaded together (side by side, group commit), in at most four
 * statements for all of them: the stored outcomes of their keys; every customer locked with all
 * its ACTIVE accounts, in ascending primary key (the Batch order); the holds they settle; the
 * holds' allocations with their accounts. Balances and spending order are
 * computed by the plans (spendStateFromActive, balanceOf), not by the database.
 */
export function loadTogether(spends: readonly SpendKey[], settles: readonly HoldKey[], nowMs: number): Batch<TogetherLoaded> {
  const pks = [
    ...spends.map((s) => customerPkSql(s.projectId, s.customerId)),
    ...settles.map((h) => transactionCustomerPkSql(h.projectId, h.transactionId)),
  ];
  const keys = [
    ...spends.map((s) => ({ projectId: s.projectId, scope: "SPEND" as const, key: s.transactionId })),
    ...settles.map((h) => ({ projectId: h.projectId, scope: "SETTLE" as const, key: h.transactionId })),
  ];
  const rowsOfEach = (statements: SQL[]) => batchOf(statements, (results) => results.map(rowsOf));
  const holdStatements = settles.length === 0 ? [] : [lockHoldsSql(settles), lockAllocationsOfSql(settles)];
  return mapBatch(
    rowsOfEach([findOutcomesSql(keys), lockCustomersWithActiveAccountsSql(pks, nowMs), ...holdStatements]),
    ([outcomeRows = [], customerRows = [], holdRows = [], allocationRows = []]) => {
      const stored = outcomesFromRows(outcomeRows);
      const byPk = new Map<bigint, CustomerLoaded>();
      const byKey = new Map<string, CustomerLoaded>();
      for (const row of customerRows) {
        const customerPk = bigOf(row.c_pk);
        const customer = byPk.get(customerPk) ?? { customerPk, active: [] };
        const account = accountFromRow(row);
        if (account) customer.active.push(account);
        byPk.set(customerPk, customer);
        byKey.set(`${bigOf(row.c_project_id)}:${stringOf(row.c_customer_id)}`, customer);
      }
      const partsByHold = new Map<bigint, Row[]>();
      for (const row of allocationRows) {
        const pk = bigOf(row.al_transaction_pk);
        const parts = partsByHold.get(pk) ?? [];
        parts.push(row);
        partsByHold.set(pk, parts);
      }
      const holds = new Map<string, TransactionRow | null>(
        holdRows.map((row) => [`${bigOf(row.project_id)}:${stringOf(row.transaction_id)}`, transactionFromRow(row)]),
      );
      const states = new Map<string, SettleState>();
      for (const { projectId, transactionId } of settles) {
        const key = `${projectId}:${transactionId}`;
        const hold = holds.get(key) ?? null;
        const customer = hold ? byPk.get(hold.customerPk) : undefined;
        const before = customer ? balanceOf(customer.active, nowMs) : NO_BALANCE;
        const parts = hold ? (partsByHold.get(hold.pk) ?? []) : [];
        states.set(
          key,
          settleStateOf(stored.get(storedOutcomeKey("SETTLE", projectId, transactionId)) ?? null, hold, parts, before, false),
        );
      }
      return { customers: byKey, outcomes: stored, settles: states };
    },
  );
}

/** All of a customer's spendable accounts of the selected types, in spending order, locked. */
export const loadAllSpendable = (
  projectId: bigint,
  customerPk: bigint,
  creditTypes: readonly string[],
  nowMs: number,
): Batch<AccountSnapshot[]> =>
  batchOf([lockSpendableAccountsSql(projectId, customerPk, nowMs, creditTypes, null)], ([rows]) => accountsFromRows(rowsOf(rows)));

function settleStateOf(
  stored: StoredOutcome | null,
  hold: TransactionRow | null,
  allocationRows: Row[],
  before: Balance,
  busy: boolean,
): SettleState {
  return {
    stored,
    hold,
    parts: allocationRows.map(allocationFromRow),
    accounts: accountsFromRows(allocationRows),
    spendable: null,
    before,
    expiryRecorded: expiryRecordedIdsFromRows(allocationRows),
    busy,
  };
}

/**
 * Consume and Unfreeze: the stored outcome, then the hold's customer (found through the hold by
 * a plain subquery: a hold's customer never changes) locked with its balance, the hold, its
 * allocation with its accounts. With `skipLocked` (the sweeper) nothing is waited for: a row
 * locked elsewhere is missing from the result, and the state says `busy`; the balance is then a
 * plain sum (a sum that skips locked rows would be wrong).
 */
export function loadSettle(projectId: bigint, transactionId: string, nowMs: number, options: { skipLocked: boolean }): Batch<SettleState> {
  const customerPk: SQL = transactionCustomerPkSql(projectId, transactionId);
  if (!options.skipLocked) {
    return batchOf(
      [
        findOutcomeSql(projectId, { scope: "SETTLE", key: transactionId }),
        lockCustomerWithBalanceSql(customerByPkSql(customerPk), nowMs),
        findTransactionSql(projectId, transactionId, { lock: true }),
        lockAllocationAccountsSql(projectId, transactionId),
      ],
      ([outcomeRows, customerRows, holdRows, allocationRows]) => {
        const customer = rowsOf(customerRows)[0];
        const before = customer ? balanceFromRow(customer) : NO_BALANCE;
        const hold = transactionFromRow(rowsOf(holdRows)[0]);
        return settleStateOf(outcomeFromRow(rowsOf(outcomeRows)[0]), hold, rowsOf(allocationRows), before, false);
      },
    );
  }
  const skipLocked = true;
  return batchOf(
    [
      findOutcomeSql(projectId, { scope: "SETTLE", key: transactionId }),
      lockCustomerSql(customerByPkSql(customerPk), { skipLocked }),
      findTransactionSql(projectId, transactionId, { lock: true, skipLocked }),
      lockAllocationAccountsSql(projectId, transactionId, { skipLocked }),
      activeBalanceSql(projectId, customerPk, nowMs),
      countAllocationAccountsSql(projectId, transactionId),
    ],
    ([outcomeRows, customerRows, holdRows, allocationRows, balanceRows, countRows]) => {
      const accounts = accountsFromRows(rowsOf(allocationRows));
      const busy = rowsOf(customerRows).length === 0 || accounts.length < Number(rowsOf(countRows)[0]?.accounts ?? 0);
      const before = balanceFromRow(rowsOf(balanceRows)[0]);
      return settleStateOf(
        outcomeFromRow(rowsOf(outcomeRows)[0]),
        transactionFromRow(rowsOf(holdRows)[0]),
        rowsOf(allocationRows),
        before,
        busy,
      );
    },
  );
}

/**
 * A group of one customer's writes (group commit), in one round trip: the customer's lock with
 * its balance, the holds it settles with their allocation and accounts, its first spendable
 * accounts of the group's credit types, and the stored outcomes of its keys (one statement). Locks in the one order:
 * customer, holds, accounts.
 */
export function loadCustomerGroup(
  projectId: bigint,
  customerId: string,
  creditTypes: readonly string[],
  keys: ReadonlyArray<{ readonly scope: OutcomeScope; readonly key: string }>,
  settled: readonly string[],
  nowMs: number,
): Batch<GroupState> {
  const customerPk = customerPkSql(projectId, customerId);
  // Only the group's customer's holds and accounts are locked (the lock order: customer first);
  // a hold of another customer is only seen to exist, and the group then runs write by write.
  const holdStatements = settled.flatMap((transactionId) => [
    findTransactionSql(projectId, transactionId, { lock: true, ofCustomer: customerPk }),
    lockAllocationAccountsSql(projectId, transactionId, { ofCustomer: customerPk }),
    transactionOwnerSql(projectId, transactionId),
  ]);
  return batchOf(
    [
      lockCustomerWithBalanceSql(customerByIdSql(projectId, customerId), nowMs),
      ...holdStatements,
      lockSpendableAccountsSql(projectId, customerPk, nowMs, creditTypes, SPEND_ACCOUNTS_LOCKED_FIRST),
      findOutcomesSql(keys.map((k) => ({ projectId, ...k }))),
    ],
    (results) => {
      const [customerRows] = results;
      const holdResults = results.slice(1, 1 + holdStatements.length);
      const spendableRows = results[1 + holdStatements.length];
      const stored = outcomesFromRows(rowsOf(results[2 + holdStatements.length]));
      const customer = rowsOf(customerRows)[0];
      const spendable = accountsFromRows(rowsOf(spendableRows));
      const holds = new Map<string, GroupHold>(
        settled.map((transactionId, i) => {
          const allocationRows = rowsOf(holdResults[3 * i + 1]);
          const hold = transactionFromRow(rowsOf(holdResults[3 * i])[0]);
          return [
            transactionId,
            {
              hold,
              elsewhere: hold === null && rowsOf(holdResults[3 * i + 2]).length > 0,
              parts: allocationRows.map(allocationFromRow),
              accounts: accountsFromRows(allocationRows),
              expiryRecorded: expiryRecordedIdsFromRows(allocationRows),
            },
          ];
        }),
      );
      const outcomes = new Map<string, StoredOutcome>();
      for (const k of keys) {
        const outcome = stored.get(storedOutcomeKey(k.scope, projectId, k.key));
        if (outcome) outcomes.set(outcomeKey(k.scope, k.key), outcome);
      }
      return {
        customerPk: customer ? bigOf(customer.c_pk) : null,
        before: customer ? balanceFromRow(customer) : NO_BALANCE,
        spendable,
        complete: spendable.length < SPEND_ACCOUNTS_LOCKED_FIRST,
        outcomes,
        holds,
      };
    },
  );
}
