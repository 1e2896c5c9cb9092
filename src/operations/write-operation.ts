import type { GroupWrite } from "../domain/plans/group-plan.js";
import type { SettleState } from "../domain/plans/settle-plan.js";
import type { HoldKey, SpendKey, TogetherLoaded } from "../store/operation-loads.js";
import type { Batch } from "../store/run-transaction.js";
import type { WritePart } from "../store/write-set.js";

/**
 * What the executor does with one write once its state is loaded. An `apply` whose answer the
 * plan already knows also has its writes as `parts`, which merge with other writes' parts into
 * the same statements (write-set.ts) when several go in one round trip.
 */
export type Step<R> =
  | {
      readonly kind: "apply";
      readonly writes: (slot: number) => Batch<R>;
      readonly parts?: { readonly parts: readonly WritePart[]; readonly result: R };
    }
  | { readonly kind: "done"; readonly result: R | null }
  | { readonly kind: "more"; readonly load: Batch<() => Step<R>> };

/** A write ready for the executor, its state types hidden. */
export interface WriteOperation<R> {
  /** The customer the request names (`project:customer`): group commit queues by it. */
  readonly customerKey: string | null;
  /** The hold the write creates (Freeze) or settles (Consume, Unfreeze), as `project:transaction_id`. */
  readonly holdKey?: string;
  /** Its load writes (a deposit creates its customer): sharing a transaction, it needs a savepoint. */
  readonly loadWrites?: boolean;
  /** The write as group commit can plan it in memory with others of its customer (group-plan.ts). */
  readonly groupable?: GroupWrite;
  start(nowMs: number): Batch<() => Step<R>>;
  /**
   * A Deduct or Freeze, or a caller's Consume or Unfreeze, which can also be loaded with writes
   * of other customers (loadTogether), side by side.
   */
  readonly together?:
    | { readonly kind: "spend"; readonly key: SpendKey; decide(loaded: TogetherLoaded, nowMs: number): () => Step<R> }
    | { readonly kind: "settle"; readonly key: HoldKey; decide(state: SettleState, nowMs: number): () => Step<R> };
  writeError(error: unknown): unknown;
}

/** Where writes go to be run: group commit, or straight to the executor. */
export interface WriteRunner {
  run<R>(op: WriteOperation<R>): Promise<R | null>;
}
