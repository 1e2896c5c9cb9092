import { type SQL, sql } from "./sql.js";
import { alertEventOf } from "../domain/balance-alerts.js";
import { type NewEvent, payloadJson } from "../domain/events.js";
import { ledgerEvent } from "../domain/ledger-events.js";
import { accountKeyOf, PENDING_ACCOUNT_ID } from "../domain/plans/deposit-plan.js";
import { writtenEntries } from "../domain/plans/list-plan.js";
import { type CreditWrite, holdRefOf, type ListState, type PlannedList, type WritePlan } from "../domain/plans/write-list.js";
import { accountIdByKeySql } from "./accounts-store.js";
import { updateAlertStatesSql } from "./alerts-store.js";
import { EVENTS_INSERT_HEAD, eventRowSql, newEventId } from "./event-rows.js";
import { rowChunksOf } from "./statement-chunks.js";

/**
 * The outbox of a list, written in its transaction (so an event exists if and only if its write
 * committed): one event per applied write, with its entries, their sequences and the balance
 * after each; one per alert crossing; and the alerts' new states. One INSERT for the list.
 */
export function listEventsSql(
  state: ListState,
  writes: readonly CreditWrite[],
  planned: PlannedList,
  deploymentId: string,
  nowMs: number,
): SQL[] {
  const rows: SQL[] = [];
  planned.plans.forEach((plan, index) => {
    const write = writes[index];
    if (!write) return;
    const event = ledgerEventOf(state, write, plan, planned.positions[index] ?? [], deploymentId, nowMs);
    if (event) rows.push(eventRowSql(event, newAccountPayload(event, write, plan)));
    for (const { alert, crossing } of planned.crossings[index] ?? []) {
      const made = { eventId: newEventId(deploymentId), transactionId: holdRefOf(write)?.transactionId ?? null };
      const alertEvent = alertEventOf(alert, crossing, made, nowMs);
      if (alertEvent) rows.push(eventRowSql(alertEvent));
    }
  });
  return [
    ...rowChunksOf(rows).map((chunk) => sql`${EVENTS_INSERT_HEAD} VALUES ${sql.join(chunk, sql`, `)}`),
    ...updateAlertStatesSql(planned.alertStates, nowMs),
  ];
}

function ledgerEventOf(
  state: ListState,
  write: CreditWrite,
  plan: WritePlan,
  positions: PlannedList["positions"][number],
  deploymentId: string,
  nowMs: number,
): NewEvent | null {
  const written = writtenEntries(plan);
  // A start's record writes no entry: its event, if any, is an alert's.
  if (written === null || written.entries.length === 0 || write.kind === "start") return null;
  const customer = state.customers.get(written.customerPk);
  return ledgerEvent({
    eventId: newEventId(deploymentId),
    projectId: customer?.ref.projectId ?? 0n,
    customerId: customer?.ref.customerId ?? "",
    transactionId: holdRefOf(write)?.transactionId ?? null,
    write,
    lines: written.entries,
    positions,
    nowMs,
  });
}

/**
 * A deposit into a new account names the account by an id the database gives it in this
 * transaction: its payload's placeholder is replaced in SQL by the account found by its key.
 */
function newAccountPayload(event: NewEvent, write: CreditWrite, plan: WritePlan): SQL | undefined {
  if (plan.kind !== "deposit" || write.kind !== "deposit" || plan.changes.accountId !== null) return undefined;
  const accountId = accountIdByKeySql(write.request.projectId, plan.changes.customerPk, accountKeyOf(write.request));
  const text = JSON.stringify(payloadJson(event.payload));
  const placeholder = `"account_id":"${PENDING_ACCOUNT_ID}"`;
  return sql`REPLACE(${text}, ${placeholder}, CONCAT('"account_id":"', ${accountId}, '"'))`;
}
