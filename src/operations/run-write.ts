import type { CreditWrite } from "../domain/plans/write-list.js";
import type { BillingContext } from "./context.js";
import { runList } from "./pipeline.js";

/** The sweeper's writes never wait for a lock and never queue behind callers. */
const isSweeperWrite = (write: CreditWrite) =>
  write.kind === "expire" || write.kind === "start" || ((write.kind === "consume" || write.kind === "unfreeze") && write.mode.automatic);

/**
 * Runs one write through the pipeline: by group commit when the context has one (calls of a busy
 * customer go in one list), else as a list of one. Its answer, or its refusal thrown. Null only
 * when the sweeper leaves a busy row for a later pass.
 */
export async function runWrite(ctx: BillingContext, write: CreditWrite): Promise<unknown> {
  if (ctx.groupCommit && !isSweeperWrite(write)) return ctx.groupCommit.run(write, ctx.signal);
  const [settled] = await runList(isSweeperWrite(write) ? sweeperContext(ctx) : ctx, [write], {
    atomic: false,
    skipLocked: isSweeperWrite(write),
  });
  if (!settled) throw new Error("a write has no answer");
  if (!settled.ok) throw settled.error;
  return settled.result;
}

/** runWrite for a caller's write, which always answers. */
export async function runCallerWrite<R>(ctx: BillingContext, write: CreditWrite): Promise<R> {
  const result = await runWrite(ctx, write);
  if (result === null) throw new Error("a caller's write was left for later");
  return result as R;
}

/** The context of the sweeper's writes: they wait for no lock, so they take no place in the gate's line either. */
export function sweeperContext(ctx: BillingContext): BillingContext {
  const { transactionGate: _gate, ...ungated } = ctx;
  return ungated;
}
