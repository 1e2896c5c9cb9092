import type { GroupWrite } from "../domain/plans/group-plan.js";
import type { Planned } from "../domain/plans/planned.js";
import { BillingError } from "../errors/billing-error.js";
import { decodeJson } from "../store/json-codec.js";
import {
  all,
  type Batch,
  mapBatch,
  NO_STATEMENTS,
  rollbackToSavepoint,
  runTransaction,
  savepoint,
  sequence,
  type Tx,
  writesOnly,
} from "../store/run-transaction.js";
import { type WritePart, writeSetSql } from "../store/write-set.js";
import { loadTogether } from "../store/operation-loads.js";
import type { BillingContext } from "./context.js";
import type { Step, WriteOperation } from "./write-operation.js";

export type { Step, WriteOperation };

/**
 * One write, as the executor runs it: load (store: lock and read, one round trip), plan (domain:
 * pure), apply (store: the statements the plan decided). `S` is the loaded state, `C` the
 * planned changes, `R` the response.
 */
export interface OperationSpec<S, C, R> {
  /** The customer the write locks first, when the request names it (group commit queues by it). */
  readonly customerKey: string | null;
  /** The hold it creates or settles (group commit finds a settlement's customer by it). */
  readonly holdKey?: string;
  /** Its load writes something (a deposit creates its customer). */
  readonly loadWrites?: boolean;
  readonly groupable?: GroupWrite;
  load(nowMs: number): Batch<S>;
  /** The rest of the state, when the plan asks for more (many accounts, an overage). */
  loadMore(state: S, nowMs: number): Batch<S>;
  plan(state: S, nowMs: number): Planned<C, R>;
  /**
   * The writes of the plan: statements of its own (`slot` tells apart the session variables of
   * writes sharing a transaction), or parts that merge with other writes' (write-set.ts).
   */
  apply:
    | { readonly statements: (changes: C, result: R, nowMs: number, slot: number) => Batch<R> }
    | { readonly parts: (changes: C, result: R, nowMs: number) => readonly WritePart[] };
  /** A failure of the writes with a public meaning (a guarded update that missed). */
  writeError?(error: unknown): unknown;
}

/** The executor's step for a write whose state is loaded: its plan, decided. */
export function decider<S, C, R extends { isIdempotentReplay: boolean }>(spec: OperationSpec<S, C, R>) {
  const decide = (state: S, nowMs: number) => (): Step<R> => {
    const planned = spec.plan(state, nowMs);
    switch (planned.kind) {
      case "apply": {
        const { apply } = spec;
        const { changes, result } = planned;
        if ("statements" in apply) return { kind: "apply", writes: (slot) => apply.statements(changes, result, nowMs, slot) };
        const parts = apply.parts(changes, result, nowMs);
        return { kind: "apply", writes: () => mapBatch(writesOnly(writeSetSql(parts)), () => result), parts: { parts, result } };
      }
      case "replay":
        // The one replay path: the stored response as it was, flagged.
        return { kind: "done", result: { ...decodeJson<R>(planned.stored.response), isIdempotentReplay: true } };
      case "more":
        return { kind: "more", load: mapBatch(spec.loadMore(state, nowMs), (more) => decide(more, nowMs)) };
      case "skip":
        return { kind: "done", result: null };
    }
  };
  return decide;
}

export function operation<S, C, R extends { isIdempotentReplay: boolean }>(spec: OperationSpec<S, C, R>): WriteOperation<R> {
  const decide = decider(spec);
  return {
    customerKey: spec.customerKey,
    ...(spec.holdKey === undefined ? {} : { holdKey: spec.holdKey }),
    ...(spec.loadWrites === undefined ? {} : { loadWrites: spec.loadWrites }),
    ...(spec.groupable === undefined ? {} : { groupable: spec.groupable }),
    start: (nowMs) => mapBatch(spec.load(nowMs), (state) => decide(state, nowMs)),
    writeError: (error) => spec.writeError?.(error) ?? error,
  };
}

/** Plans a loaded write to its end: loads more while the plan asks for it. */
export async function settleStep<R>(tx: Tx, step: Step<R>): Promise<Exclude<Step<R>, { kind: "more" }>> {
  let current = step;
  while (current.kind === "more") current = (await tx.runBatch(current.load))();
  return current;
}

/**
 * Runs one write: through the context's group commit when it has one (calls of a busy customer
 * are applied together), else alone. Null only when the sweeper skips a busy hold.
 */
export function executeOne<R>(ctx: BillingContext, op: WriteOperation<R>): Promise<R | null> {
  return ctx.groupCommit ? ctx.groupCommit.run(op) : executeAlone(ctx, op);
}

/**
 * Runs one write in its own transaction: two round trips (load; writes and COMMIT), one more when
 * the plan asks for more state.
 */
export async function executeAlone<R>(ctx: BillingContext, op: WriteOperation<R>): Promise<R | null> {
  return runTransaction(
    ctx.database,
    async (tx) => {
      const nowMs = ctx.now();
      const step = await settleStep(tx, (await tx.runBatch(op.start(nowMs)))());
      if (step.kind === "done") return step.result;
      return tx.runBatch(step.writes(0), { commit: true }).catch((error: unknown) => {
        throw op.writeError(error);
      });
    },
    ctx.retries,
  );
}

/** executeOne for a write that always answers (every caller but the sweeper). */
export async function execute<R>(ctx: BillingContext, op: WriteOperation<R>): Promise<R> {
  const result = await executeOne(ctx, op);
  if (result === null) throw new Error("a write that always answers was skipped");
  return result;
}

/** One write's answer among several: its response, or the catalogue error it alone would have got. */
export type Settled<R> = { readonly ok: true; readonly result: R | null } | { readonly ok: false; readonly error: unknown };

/** An atomic list refused: the index of the first write that failed and its error; nothing was written. */
export class AtomicFailure extends Error {
  constructor(
    readonly index: number,
    readonly error: BillingError,
  ) {
    super(`write ${index} of an atomic list failed: ${error.code}`);
  }
}

export interface TogetherOptions {
  /** All or none: the first refusal rolls everything back (AtomicFailure). Otherwise each write stands alone. */
  readonly atomic: boolean;
  /** Locks taken before the first write's load: found in one round trip, taken with that load. */
  readonly lockFirst?: Batch<Batch<void>>;
}

/**
 * The executor of several writes in one transaction (the Batch RPC and per-customer group
 * commit). Each write is loaded, planned and applied in turn, in list order, on the state the
 * earlier ones left, so each answer is the one it would have got alone in that order; the writes
 * of one go in the same round trip as the load of the next (n writes: n + 1 round trips, one
 * COMMIT). Not atomic: a write whose load writes (a deposit creates its customer) has a
 * savepoint, and if refused (or replayed) is rolled back to it, alone; the others write nothing
 * before their plan accepts them. A failure of the transaction itself (a database error) fails the whole list:
 * callers then run each write alone (executeEachAlone), or report it.
 */
export async function executeTogether(
  ctx: BillingContext,
  ops: readonly WriteOperation<unknown>[],
  options: TogetherOptions,
): Promise<Settled<unknown>[]> {
  return runTransaction(
    ctx.database,
    async (tx) => {
      const nowMs = ctx.now();
      const settled: Settled<unknown>[] = [];
      let pending: Batch<void> = options.lockFirst ? await tx.runBatch(options.lockFirst) : NO_STATEMENTS;
      let writing = -1;
      const send = async <T>(batch: Batch<T>, commit = false): Promise<T> => {
        try {
          return await tx.runBatch(batch, { commit });
        } catch (error) {
          // Statements of the previous write fail with their own meaning (a guarded update).
          const translated = writing >= 0 ? (ops[writing]?.writeError(error) ?? error) : error;
          if (options.atomic && translated instanceof BillingError) throw new AtomicFailure(writing, translated);
          throw translated;
        }
      };
      for (const [index, op] of ops.entries()) {
        // Only a write whose load writes needs undoing when refused; the others wrote nothing yet.
        const undoable = !options.atomic && op.loadWrites === true;
        const begin = undoable ? savepoint(index) : NO_STATEMENTS;
        const [, [, decide]] = await send(sequence(pending, sequence(begin, op.start(nowMs))));
        writing = -1;
        pending = NO_STATEMENTS;
        try {
          const step = await settleStep(tx, decide());
          if (step.kind === "apply") {
            writing = index;
            pending = mapBatch(step.writes(index), (result) => {
              settled[index] = { ok: true, result };
            });
            continue;
          }
          settled[index] = { ok: true, result: step.result };
        } catch (error) {
          if (!(error instanceof BillingError)) throw error;
          if (options.atomic) throw new AtomicFailure(index, error);
          settled[index] = { ok: false, error };
        }
        if (undoable) pending = rollbackToSavepoint(index);
      }
      await send(pending, true);
      return settled;
    },
    ctx.retries,
  );
}

/**
 * Writes of different customers in one transaction, side by side (group commit's cross-customer
 * path): every load in the first round trip (loadTogether: all their customers locked in one
 * statement, in ascending primary key, then their holds), every write merged with the others'
 * and the COMMIT in the second, so a busy instance pays one transaction, two round trips and a
 * dozen statements for the whole list. Only Deducts, Freezes, Consumes and Unfreezes (`together`)
 * go this way: a deposit's load writes, and undoing it would need a savepoint between loads sent
 * together. A refusal or a replay writes nothing and leaves the others alone. A failure of the
 * transaction fails the whole list (the caller then runs each write alone, where its own failure
 * gets its own meaning).
 */
export async function executeSideBySide(ctx: BillingContext, ops: readonly WriteOperation<unknown>[]): Promise<Settled<unknown>[]> {
  return runTransaction(
    ctx.database,
    async (tx) => {
      const nowMs = ctx.now();
      const decisions = await tx.runBatch(loadSideBySide(ops, nowMs));
      const settled: Settled<unknown>[] = [];
      const writes: Batch<void>[] = [];
      const parts: WritePart[] = [];
      for (const [index, decide] of decisions.entries()) {
        try {
          const step = await settleStep(tx, decide());
          if (step.kind === "apply" && step.parts) {
            parts.push(...step.parts.parts);
            settled[index] = { ok: true, result: step.parts.result };
          } else if (step.kind === "apply") {
            writes.push(
              mapBatch(step.writes(index), (result) => {
                settled[index] = { ok: true, result };
              }),
            );
          } else {
            settled[index] = { ok: true, result: step.result };
          }
        } catch (error) {
          if (!(error instanceof BillingError)) throw error;
          settled[index] = { ok: false, error };
        }
      }
      // The parts of every write merge into a few statements: what a statement costs the database is paid once.
      if (parts.length > 0) writes.push(writesOnly(writeSetSql(parts)));
      if (writes.length > 0) await tx.runBatch(all(writes), { commit: true });
      return settled;
    },
    ctx.retries,
  );
}

/** The loads of writes side by side, in one round trip (loadTogether), each write's decision. */
function loadSideBySide(ops: readonly WriteOperation<unknown>[], nowMs: number): Batch<(() => Step<unknown>)[]> {
  const spends = ops.flatMap((op) => (op.together?.kind === "spend" ? [op.together.key] : []));
  const settles = ops.flatMap((op) => (op.together?.kind === "settle" ? [op.together.key] : []));
  return mapBatch(loadTogether(spends, settles, nowMs), (loaded) =>
    ops.map((op) => {
      const together = op.together;
      if (together?.kind === "spend") return together.decide(loaded, nowMs);
      if (together?.kind !== "settle") throw new Error("only Deducts, Freezes, Consumes and Unfreezes go side by side");
      const state = loaded.settles.get(`${together.key.projectId}:${together.key.transactionId}`);
      if (!state) throw new Error("a settlement loaded with others has no state");
      return together.decide(state, nowMs);
    }),
  );
}

/**
 * Each write in its own transaction, in order: the fallback when a shared transaction failed.
 * Whatever one write throws is its own answer (a catalogue error, or a failure its caller logs).
 */
export async function executeEachAlone(ctx: BillingContext, ops: readonly WriteOperation<unknown>[]): Promise<Settled<unknown>[]> {
  const settled: Settled<unknown>[] = [];
  for (const op of ops) {
    try {
      settled.push({ ok: true, result: await executeAlone(ctx, op) });
    } catch (error) {
      settled.push({ ok: false, error });
    }
  }
  return settled;
}
