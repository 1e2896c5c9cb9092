import { balanceOfPosition, type LedgerPosition } from "./ledger-position.js";
import type { EventPayload, LedgerEventType, NewEvent } from "./events.js";
import type { LedgerLine } from "./plans/planned.js";
import type { CreditWrite } from "./plans/write-list.js";
import type { Operation } from "./types.js";

/**
 * A credit write's event, from what its plan already has: its ledger lines and their positions
 * (sequence and balance after each). Pure; the pipeline calls it in its apply step.
 */

/** The credit writes that put entries on the ledger: all but the sweeper's records of starts. */
export type LedgerWrite = Exclude<CreditWrite, { kind: "start" }>;

/** The event type of a credit write (auto-settlements are consumes and unfreezes, expiries their own). */
export function ledgerEventType(write: LedgerWrite): LedgerEventType {
  switch (write.kind) {
    case "deposit":
      return "ledger.deposit";
    case "spend":
      return write.spendKind === "FREEZE" ? "ledger.freeze" : "ledger.deduct";
    case "consume":
      return "ledger.consume";
    case "unfreeze":
      return "ledger.unfreeze";
    case "expire":
      return "ledger.expire";
    case "refund":
      return "ledger.refund";
    case "void":
      return "ledger.void";
  }
}

/**
 * The operations a ledger event's entries may have: its write's own, and the EXPIRE entries of
 * credits a settlement or a refund returns to an account whose expiry is recorded.
 */
export const OPERATIONS_OF_EVENT_TYPE: ReadonlyMap<LedgerEventType, readonly Operation[]> = new Map<LedgerEventType, readonly Operation[]>([
  ["ledger.deposit", ["DEPOSIT"]],
  ["ledger.deduct", ["DEDUCT"]],
  ["ledger.freeze", ["FREEZE"]],
  ["ledger.consume", ["CONSUME", "UNFREEZE", "EXPIRE"]],
  ["ledger.unfreeze", ["UNFREEZE", "EXPIRE"]],
  ["ledger.expire", ["EXPIRE"]],
  ["ledger.refund", ["REFUND", "EXPIRE"]],
  ["ledger.void", ["VOID"]],
]);

/**
 * The facts of a credit write that its entries do not name: a refund's own key (its
 * transaction_id is the charge's), a void's key and the deposit entry it takes from.
 */
export function ledgerEventData(write: CreditWrite): Readonly<Record<string, string>> {
  switch (write.kind) {
    case "refund":
      return { refund_id: write.request.refundId };
    case "void":
      return { void_id: write.request.voidId, record_id: write.request.recordId.toString() };
    default:
      return {};
  }
}

/** The payload of a write whose entries are `lines`, at `positions` (one per line, in order). */
export function ledgerEventPayload(
  lines: readonly LedgerLine[],
  positions: readonly LedgerPosition[],
  data: Readonly<Record<string, string>> = {},
): EventPayload {
  if (lines.length !== positions.length) throw new Error("a write's entries and their positions differ in number");
  const entries = lines.map((line, i) => {
    const position = positions[i] as LedgerPosition;
    return {
      sequence: position.sequence,
      operation: line.operation,
      amount: line.amount,
      accountId: line.accountId,
      creditType: line.creditType,
      balanceAfter: balanceOfPosition(position),
    };
  });
  const last = positions.at(-1);
  return { entries, balanceAfter: last ? balanceOfPosition(last) : null, data };
}

export interface LedgerEventFields {
  readonly eventId: string;
  readonly projectId: bigint;
  readonly customerId: string;
  readonly transactionId: string | null;
  readonly write: LedgerWrite;
  readonly lines: readonly LedgerLine[];
  readonly positions: readonly LedgerPosition[];
  readonly nowMs: number;
}

/** The outbox event of one applied credit write. */
export const ledgerEvent = (f: LedgerEventFields): NewEvent => ({
  eventId: f.eventId,
  projectId: f.projectId,
  customerId: f.customerId,
  type: ledgerEventType(f.write),
  transactionId: f.transactionId,
  payload: ledgerEventPayload(f.lines, f.positions, ledgerEventData(f.write)),
  nowMs: f.nowMs,
});
