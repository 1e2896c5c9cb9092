import { type SQL, sql } from "drizzle-orm";
import { type DepositChanges, PENDING_ACCOUNT_ID, PENDING_LEDGER_ENTRY_ID } from "../domain/plans/deposit-plan.js";
import type { LedgerLine } from "../domain/plans/planned.js";
import type { SettleChanges } from "../domain/plans/settle-plan.js";
import type { SpendChanges } from "../domain/plans/spend-plan.js";
import type { DepositRequest, SpendRequest } from "../domain/requests.js";
import { creditAccountSql } from "./accounts-store.js";
import { encodeJson } from "./json-codec.js";
import { expiryParts, ledgerPart } from "./ledger-store.js";
import { outcomePart } from "./outcomes-store.js";
import { bigOf } from "./row-values.js";
import { type Batch, batchOf, rowsOf } from "./run-transaction.js";
import { allocationsPart, newTransactionPart, transactionPkSql } from "./transactions-store.js";
import { type WritePart, writeSetSql } from "./write-set.js";

// The second round trip of each write: what its plan decided, as statements. A deposit's writes
// are statements of its own (`slot` names its session variables, so several writes can share a
// transaction); a spend's and a settlement's are parts (write-set.ts) that merge with the parts
// of other writes sent in the same round trip.

/** A session variable of write `slot` (ids known only once a row is inserted). */
const variable = (slot: number, name: string): SQL => sql.raw(`@w${Math.trunc(slot)}_${name}`);

/**
 * A planned response whose placeholders (PENDING_ACCOUNT_ID, PENDING_LEDGER_ENTRY_ID) are replaced,
 * in the database, by the ids the write produced: the stored outcome is the exact response
 * without a third round trip.
 */
function responseWithIds(response: unknown, ids: { account: SQL; entry: SQL }): SQL {
  const tagged = (id: SQL) => sql`CONCAT('{"$bigint":"', ${id}, '"}')`;
  return sql`REPLACE(REPLACE(${encodeJson(response)}, ${encodeJson(PENDING_ACCOUNT_ID)}, ${tagged(ids.account)}),
    ${encodeJson(PENDING_LEDGER_ENTRY_ID)}, ${tagged(ids.entry)})`;
}

/** Credits the account (creating it when new), appends the DEPOSIT entry, records the outcome. */
export function applyDeposit(
  request: DepositRequest,
  changes: DepositChanges,
  response: unknown,
  nowMs: number,
  slot: number,
): Batch<{ accountId: bigint; ledgerEntryId: bigint }> {
  const { projectId } = request;
  const account = variable(slot, "account");
  const entry = variable(slot, "entry");
  const ledger = ledgerPart(
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
    [{ operation: "DEPOSIT", accountId: account, amount: changes.amount, ...changes.accountKey }],
  );
  const outcome =
    changes.envelope === null
      ? []
      : writeSetSql([
          outcomePart(projectId, {
            envelope: changes.envelope,
            customerPk: changes.customerPk,
            response: responseWithIds(response, { account, entry }),
            nowMs,
          }),
        ]);
  const statements = [
    creditAccountSql(projectId, changes.customerPk, changes.accountKey, changes.amount, nowMs),
    sql`SET ${account} = LAST_INSERT_ID()`,
    ...writeSetSql([ledger]),
    sql`SET ${entry} = LAST_INSERT_ID()`,
    ...outcome,
    sql`SELECT ${account} AS account_id, ${entry} AS ledger_entry_id`,
  ];
  return batchOf(statements, (results) => {
    const ids = rowsOf(results[results.length - 1])[0];
    return { accountId: bigOf(ids?.account_id), ledgerEntryId: bigOf(ids?.ledger_entry_id) };
  });
}

/** Moves the allocated credits, inserts the transaction with its allocation and entries, records the outcome. */
export function spendParts(request: SpendRequest, changes: SpendChanges, response: unknown, nowMs: number): WritePart[] {
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
      lines.map((l) => ({ operation: kind, ...l })),
    ),
  ];
}

/** Settles the hold (guarded: it must still be FROZEN), moves the credits, appends the entries, records the outcome. */
export function settleParts(
  projectId: bigint,
  apiKeyId: bigint | null,
  changes: SettleChanges,
  response: unknown,
  nowMs: number,
): WritePart[] {
  const { hold } = changes;
  const onHold = (entries: readonly LedgerLine[]) =>
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
    ...onHold(changes.entries),
    // transaction_id says which settlement returned the credits.
    ...expiryParts({ projectId, customerPk: hold.customerPk, transactionId: hold.transactionId, nowMs }, changes.expiring),
  ];
}
