import { type SQL, sql } from "./sql.js";
import { accountKeyOf, PENDING_ACCOUNT_ID, PENDING_LEDGER_ENTRY_ID } from "../domain/plans/deposit-plan.js";
import type { LedgerLine } from "../domain/plans/planned.js";
import type { SettleChanges } from "../domain/plans/settle-plan.js";
import type { SpendChanges } from "../domain/plans/spend-plan.js";
import type { LedgerPosition } from "../domain/ledger-position.js";
import type { CreditWrite, ListState, PlannedList, WritePlan } from "../domain/plans/write-list.js";
import type { DepositRequest, SpendRequest } from "../domain/requests.js";
import { accountIdByKeySql, creditAccountSql, markRecordedSql } from "./accounts-store.js";
import { fillCustomerSql, removeCreatedCustomerSql } from "./customers-store.js";
import { listEventsSql } from "./list-events.js";
import { encodeJson } from "./json-codec.js";
import { expiryParts, ledgerPart, type NewLedgerEntry } from "./ledger-store.js";
import { outcomePart } from "./outcomes-store.js";
import { reversalApply } from "./reversal-apply.js";
import { bigOf } from "./row-values.js";
import { guardedUpdateSql } from "./row-count-guard.js";
import { type Batch, mapBatch, namedBatch, rowsOf } from "./run-transaction.js";
import { customers } from "./schema.js";
import { allocationsPart, newTransactionPart, transactionPkSql } from "./transactions-store.js";
import { type WritePart, writeSetSql } from "./write-set.js";

// The apply of the one write pipeline: a list's plans as one write set. Deposits first (they only
// add credits, so what a later spend of the list takes is there), then every spend's,
// settlement's and expiry's parts merged into one statement per table (write-set.ts), then the
// marks of the accounts whose expiry or start the list records (one guarded UPDATE each), then the
// customers' labels. The ids a deposit creates are read back by name.

/** The ids each applied deposit wrote, by its index in the list. */
export type WrittenIds = ReadonlyMap<number, { readonly accountId: bigint; readonly ledgerEntryId: bigint }>;

/** Each planned entry with its position in the customer's ledger. */
const positioned = (entries: readonly LedgerLine[], positions: readonly LedgerPosition[]): NewLedgerEntry[] =>
  entries.map((e, i) => {
    const position = positions[i];
    if (!position) throw new Error("an entry without its ledger position");
    return { ...e, position };
  });

/** Where a list's events go: this deployment's outbox (null: no outbox, the bench's switch). */
export interface Outbox {
  readonly deploymentId: string;
}

export function applyList(
  state: ListState,
  writes: readonly CreditWrite[],
  planned: PlannedList,
  nowMs: number,
  outbox: Outbox | null,
): Batch<WrittenIds> {
  const deposits: { index: number; statements: DepositStatements }[] = [];
  const parts: WritePart[] = [];
  const recorded = { expiry: [] as bigint[], start: [] as bigint[] };
  const { plans } = planned;
  const reversals: SQL[] = [];
  plans.forEach((plan, index) => {
    const write = writes[index];
    const positions = planned.positions[index] ?? [];
    if (!write) throw new Error("a plan without its write");
    // A refund's or void's parts (reversal-apply.ts); nothing for the other writes.
    const reversal = reversalApply(write, plan, positions, nowMs);
    parts.push(...reversal.parts);
    reversals.push(...reversal.statements);
    if (plan.kind === "deposit" && write.kind === "deposit") {
      deposits.push({ index, statements: depositSql(write.request, plan, positions, nowMs) });
    }
    parts.push(...mergedPartsOf(write, plan, positions, nowMs));
    if (plan.kind === "expire") recorded.expiry.push(plan.changes.accountId);
    if (plan.kind === "start") recorded.start.push(plan.changes.accountId);
  });
  const groups = {
    customers: customerLabelsSql(state, writes, plans),
    writeSet: writeSetSql(parts, (guard) => customerLedgersSql(planned.ledgers, guard)),
    reversals,
    records: [...markRecordedSql("expiry", recorded.expiry), ...markRecordedSql("start", recorded.start)],
    events: outbox === null ? [] : listEventsSql(state, writes, planned, outbox.deploymentId, nowMs),
  };
  // In this order: the ids are read after the deposit's entry, the outcome names them after.
  const depositGroups = Object.fromEntries(
    deposits.flatMap(({ index, statements }) => [
      [`deposit${index}`, statements.writes],
      [`depositIds${index}`, [statements.ids]],
      [`depositOutcome${index}`, statements.outcome],
    ]),
  );
  return mapBatch(namedBatch<string>({ ...depositGroups, ...groups }), (results) => {
    const ids = new Map<number, { accountId: bigint; ledgerEntryId: bigint }>();
    for (const d of deposits) {
      const row = rowsOf(results[`depositIds${d.index}`]?.[0])[0];
      ids.set(d.index, { accountId: bigOf(row?.account_id), ledgerEntryId: bigOf(row?.ledger_entry_id) });
    }
    return ids;
  });
}

/** What a write adds to the list's merged write set: a spend's or a settlement's parts, an expiry's entry; nothing for the others. */
function mergedPartsOf(write: CreditWrite, plan: WritePlan, positions: readonly LedgerPosition[], nowMs: number): WritePart[] {
  if (plan.kind === "spend" && write.kind === "spend") return spendParts(write.request, plan.changes, plan.result, positions, nowMs);
  if (plan.kind === "settle" && (write.kind === "consume" || write.kind === "unfreeze")) {
    return settleParts(write.request.projectId, write.request.apiKeyId, plan.changes, plan.result, positions, nowMs);
  }
  if (plan.kind === "expire") return expiryParts(recordContextOf(plan.changes, nowMs), positioned(plan.changes.entries, positions));
  return [];
}

/** Whose an expiry's entry is: the account's customer, with no transaction. */
const recordContextOf = (changes: { projectId: bigint; customerPk: bigint }, nowMs: number) => ({
  projectId: changes.projectId,
  customerPk: changes.customerPk,
  transactionId: "",
  nowMs,
});

/**
 * The labels of each customer's first applied deposit fill what it still lacks; a customer the
 * prefetch created for deposits that were all refused or replayed is removed again.
 */
function customerLabelsSql(state: ListState, writes: readonly CreditWrite[], plans: readonly WritePlan[]): SQL[] {
  const filled = new Set<bigint>();
  const statements: SQL[] = [];
  plans.forEach((plan, index) => {
    const write = writes[index];
    if (plan.kind !== "deposit" || write?.kind !== "deposit" || filled.has(plan.changes.customerPk)) return;
    filled.add(plan.changes.customerPk);
    statements.push(fillCustomerSql(plan.changes.customerPk, write.request));
  });
  for (const c of state.customers.values()) {
    if (c.created && !filled.has(c.pk)) statements.push(...guardedUpdateSql(removeCreatedCustomerSql(c.pk), 1));
  }
  return statements;
}

/**
 * Each customer's ledger position moves to its last entry's. No row-count guard of its own: the
 * entries' UNIQUE (customer_pk, sequence) is the guard. Were the row not at the position the
 * prefetch read under its lock, that position's successors would exist already, this list's first
 * entry would repeat one of them, and its INSERT would fail the batch before COMMIT. It carries
 * the guard of the write set's last UPDATE (`guard`), which it follows (write-set.ts).
 */
function customerLedgersSql(ledgers: PlannedList["ledgers"], guard: SQL | null): SQL | null {
  const moved = [...ledgers];
  if (moved.length === 0) return null;
  const caseOf = (value: (l: { from: bigint; to: LedgerPosition }) => bigint) =>
    sql`CASE id ${sql.join(
      moved.map(([pk, l]) => sql`WHEN ${pk} THEN ${value(l)}`),
      sql` `,
    )} END`;
  const ids = sql.join(
    moved.map(([pk]) => sql`${pk}`),
    sql`, `,
  );
  return sql`UPDATE ${customers} SET ledger_sequence = ${caseOf((l) => l.to.sequence)}, ledger_total = ${caseOf((l) => l.to.total)},
      ledger_used = ${caseOf((l) => l.to.used)}, ledger_frozen = ${caseOf((l) => l.to.frozen)}
    WHERE id IN (${ids}) AND ledger_sequence = ${caseOf((l) => l.from)}${guard ? sql` AND ${guard}` : sql``}`;
}

/** A deposit's statements: its writes, the SELECT of the ids they gave, the outcome that names them. */
interface DepositStatements {
  readonly writes: SQL[];
  readonly ids: SQL;
  readonly outcome: SQL[];
}

/**
 * Credits the account (creating it when new), appends the DEPOSIT entry, reads both ids back,
 * records the outcome with them: the stored response is the exact answer, without a third round trip.
 */
function depositSql(
  request: DepositRequest,
  plan: Extract<WritePlan, { kind: "deposit" }>,
  positions: readonly LedgerPosition[],
  nowMs: number,
): DepositStatements {
  const { projectId } = request;
  const { changes, result } = plan;
  const accountId = accountIdByKeySql(projectId, changes.customerPk, accountKeyOf(request));
  const entry = ledgerPart(
    {
      projectId,
      customerPk: changes.customerPk,
      transactionPk: null,
      transactionId: "",
      idempotencyKey: request.idempotencyKey ?? "",
      businessType: 0,
      description: request.description,
      metadata: request.metadata,
      automatic: false,
      nowMs,
      apiKeyId: request.apiKeyId,
    },
    positioned([{ operation: "DEPOSIT", accountId: 0n, amount: changes.amount, ...changes.accountKey }], positions).map((e) => ({
      ...e,
      accountId,
    })),
  );
  // The entry is a single-row INSERT: LAST_INSERT_ID() is its id until the next insert.
  const writes = [creditAccountSql(projectId, changes.customerPk, changes.accountKey, changes.amount, nowMs), ...writeSetSql([entry])];
  const ids = sql`SELECT ${accountId} AS account_id, LAST_INSERT_ID() AS ledger_entry_id`;
  if (changes.envelope === null) return { writes, ids, outcome: [] };
  const tagged = (id: SQL) => sql`CONCAT('{"$bigint":"', ${id}, '"}')`;
  const response = sql`REPLACE(REPLACE(${encodeJson(result)}, ${encodeJson(PENDING_ACCOUNT_ID)}, ${tagged(accountId)}),
    ${encodeJson(PENDING_LEDGER_ENTRY_ID)}, ${tagged(sql`LAST_INSERT_ID()`)})`;
  return {
    writes,
    ids,
    outcome: writeSetSql([outcomePart(projectId, { envelope: changes.envelope, customerPk: changes.customerPk, response, nowMs })]),
  };
}

/** Moves the allocated credits, inserts the transaction with its allocation and entries, records the outcome. */
function spendParts(
  request: SpendRequest,
  changes: SpendChanges,
  response: unknown,
  positions: readonly LedgerPosition[],
  nowMs: number,
): WritePart[] {
  const { projectId } = request;
  const { customerPk, kind, lines } = changes;
  const transactionPk = transactionPkSql(projectId, request.transactionId);
  return [
    { kind: "deltas", deltas: changes.deltas },
    newTransactionPart(projectId, {
      ...request,
      customerPk,
      kind,
      status: kind === "DEDUCT" ? "DEDUCTED" : "FROZEN",
      autoAction: changes.autoAction,
      autoAtMs: changes.autoAtMs,
      nowMs,
    }),
    outcomePart(projectId, { envelope: changes.envelope, customerPk, response: encodeJson(response), nowMs }),
    allocationsPart(projectId, transactionPk, lines),
    ledgerPart(
      { ...request, customerPk, transactionPk, idempotencyKey: "", automatic: false, nowMs },
      positioned(
        lines.map((l) => ({ operation: kind, ...l })),
        positions,
      ),
    ),
  ];
}

/** Settles the hold (guarded: it must still be FROZEN), moves the credits, appends the entries, records the outcome. */
function settleParts(
  projectId: bigint,
  apiKeyId: bigint | null,
  changes: SettleChanges,
  response: unknown,
  positions: readonly LedgerPosition[],
  nowMs: number,
): WritePart[] {
  const { hold } = changes;
  const onHoldPositions = positions.slice(0, changes.entries.length);
  const expiringPositions = positions.slice(changes.entries.length);
  const onHold = (entries: readonly NewLedgerEntry[]) =>
    entries.length === 0
      ? []
      : [
          ledgerPart(
            {
              projectId,
              customerPk: hold.customerPk,
              transactionPk: hold.pk,
              transactionId: hold.transactionId,
              idempotencyKey: "",
              businessType: hold.businessType,
              description: hold.description,
              metadata: hold.metadata,
              automatic: changes.automatic,
              nowMs,
              apiKeyId,
            },
            entries,
          ),
        ];
  return [
    { kind: "settle", holdPk: hold.pk, settlement: { ...changes, nowMs } },
    outcomePart(projectId, { envelope: changes.envelope, customerPk: hold.customerPk, response: encodeJson(response), nowMs }),
    { kind: "deltas", deltas: changes.deltas },
    ...onHold(positioned(changes.entries, onHoldPositions)),
    // transaction_id says which settlement returned the credits.
    ...expiryParts(
      { projectId, customerPk: hold.customerPk, transactionId: hold.transactionId, nowMs },
      positioned(changes.expiring, expiringPositions),
    ),
  ];
}
