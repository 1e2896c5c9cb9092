import { type GroupWrite, planGroup } from "../domain/plans/group-plan.js";
import type { OutcomeScope } from "../domain/idempotency.js";
import { decodeJson } from "../store/json-codec.js";
import { loadCustomerGroup } from "../store/operation-loads.js";
import { settleParts, spendParts } from "../store/operation-writes.js";
import { runTransaction, writesOnly } from "../store/run-transaction.js";
import { type WritePart, writeSetSql } from "../store/write-set.js";
import type { BillingContext } from "./context.js";
import type { Settled } from "./executor.js";
import type { WriteOperation } from "./write-operation.js";

/** A group that can be loaded once and planned in memory: one customer, distinct keys, one credit-type selection. */
interface PlannableGroup {
  readonly projectId: bigint;
  readonly customerId: string;
  readonly creditTypes: readonly string[];
  readonly writes: readonly GroupWrite[];
}

function plannableGroup(customerKey: string, ops: readonly WriteOperation<unknown>[]): PlannableGroup | null {
  const writes: GroupWrite[] = [];
  const keys = new Set<string>();
  // The queue's key is `project:customer` (a project id has no colon; a customer id may).
  const customerId = customerKey.slice(customerKey.indexOf(":") + 1);
  let creditTypes: readonly string[] | null = null;
  for (const op of ops) {
    const w = op.groupable;
    if (!w) return null;
    // A key used twice in the group (a repeat, or a settlement of a hold the group creates)
    // depends on a write of the group itself: run those write by write.
    const { transactionId } = w.request;
    if (keys.has(transactionId)) return null;
    keys.add(transactionId);
    const named = w.request.customerId;
    if (named !== null) {
      if (named !== customerId) return null;
    }
    if (w.kind === "spend") {
      const types = [...w.request.creditTypes].sort();
      if (creditTypes !== null && types.join(",") !== [...creditTypes].sort().join(",")) return null;
      creditTypes ??= w.request.creditTypes;
    }
    writes.push(w);
  }
  const first = writes[0];
  if (first === undefined || `${first.request.projectId}:${customerId}` !== customerKey) return null;
  return { projectId: first.request.projectId, customerId, creditTypes: creditTypes ?? [], writes };
}

/**
 * Group commit's fast path: the group's state loaded once (one round trip), every write planned
 * in memory in arrival order on the state the earlier ones leave (domain/plans/group-plan.ts),
 * all writes and COMMIT in a second round trip. Null when the group does not qualify or the
 * loaded state cannot decide it: the caller then runs it write by write (executeTogether).
 */
export async function executeGroupPlanned(
  ctx: BillingContext,
  customerKey: string,
  ops: readonly WriteOperation<unknown>[],
): Promise<Settled<unknown>[] | null> {
  const group = plannableGroup(customerKey, ops);
  if (group === null) return null;
  const { projectId, customerId, creditTypes, writes } = group;
  const keys = writes.map((w): { scope: OutcomeScope; key: string } => ({
    scope: w.kind === "spend" ? "SPEND" : "SETTLE",
    key: w.request.transactionId,
  }));
  const settled = writes.filter((w) => w.kind !== "spend").map((w) => w.request.transactionId);
  return runTransaction(
    ctx.database,
    async (tx) => {
      const nowMs = ctx.now();
      const state = await tx.runBatch(loadCustomerGroup(projectId, customerId, creditTypes, keys, settled, nowMs));
      const planned = planGroup(state, writes, nowMs);
      // Rolled back: nothing was written, the locks are released.
      if (planned === null) return null;
      const parts: WritePart[] = [];
      const answers = planned.map((p, slot): Settled<unknown> => {
        const w = writes[slot];
        if (p.kind === "refused" || w === undefined) return { ok: false, error: p.kind === "refused" ? p.error : new Error("no write") };
        if (p.planned.kind === "replay") {
          return { ok: true, result: { ...decodeJson<object>(p.planned.stored.response), isIdempotentReplay: true } };
        }
        if (p.kind === "spend" && w.kind === "spend") {
          parts.push(...spendParts(w.request, p.planned.changes, p.planned.result, nowMs));
        } else if (p.kind === "settle" && w.kind !== "spend") {
          parts.push(...settleParts(projectId, w.request.apiKeyId, p.planned.changes, p.planned.result, nowMs));
        }
        return { ok: true, result: p.planned.result };
      });
      // One statement per table for the whole group (write-set.ts).
      if (parts.length > 0) await tx.runBatch(writesOnly(writeSetSql(parts)), { commit: true });
      return answers;
    },
    ctx.retries,
  );
}
