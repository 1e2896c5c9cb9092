import { appendTo } from "../domain/collections.js";
import type { CreditWrite } from "../domain/plans/write-list.js";
import type { BillingContext } from "./context.js";
import { runList, type Settled } from "./pipeline.js";
import { sweeperContext } from "./run-write.js";

/** A group of the sweeper's writes that succeed or fail together: a customer's records, a hold's settlement. */
export interface SweeperGroup {
  readonly customerPk: bigint;
  readonly writes: readonly CreditWrite[];
}

/** A group's answers (its writes', in order), or the error its own list failed with. */
export type GroupAnswers = { readonly ok: true; readonly answers: readonly Settled[] } | { readonly ok: false; readonly error: unknown };

/**
 * The sweeper's writes of a pass in one list: one transaction, nothing waited for (SKIP LOCKED).
 * When that list fails unexpectedly (a guard that missed, a statement the database refused), each
 * group runs again in a list of its own, so that one group's failure leaves the others written.
 * With side by side off (`ctx.sideBySide` false: a sharded database), no transaction spans two
 * customers: each customer's groups are a list of their own.
 */
export async function runSweeperGroups(ctx: BillingContext, groups: readonly SweeperGroup[]): Promise<GroupAnswers[]> {
  if (ctx.sideBySide !== false) return runTogether(ctx, groups);
  const byCustomer = new Map<bigint, number[]>();
  for (const [index, group] of groups.entries()) appendTo(byCustomer, group.customerPk, index);
  const answers = new Map<number, GroupAnswers>();
  for (const indexes of byCustomer.values()) {
    const answered = await runTogether(
      ctx,
      indexes.flatMap((index) => groups[index] ?? []),
    );
    indexes.forEach((index, k) => {
      const answer = answered[k];
      if (answer) answers.set(index, answer);
    });
  }
  return groups.map((_, index) => {
    const answer = answers.get(index);
    if (!answer) throw new Error("a sweeper's group has no answer");
    return answer;
  });
}

async function runTogether(ctx: BillingContext, groups: readonly SweeperGroup[]): Promise<GroupAnswers[]> {
  const run = (writes: readonly CreditWrite[]) => runList(sweeperContext(ctx), writes, { atomic: false, skipLocked: true });
  if (groups.length === 0) return [];
  try {
    const answers = await run(groups.flatMap((group) => group.writes));
    let next = 0;
    return groups.map((group) => {
      const from = next;
      next += group.writes.length;
      return { ok: true, answers: answers.slice(from, next) };
    });
  } catch (error) {
    if (groups.length === 1) return [{ ok: false, error }];
    const each: GroupAnswers[] = [];
    for (const group of groups) {
      each.push(
        await run(group.writes).then(
          (answers): GroupAnswers => ({ ok: true, answers }),
          (groupError: unknown): GroupAnswers => ({ ok: false, error: groupError }),
        ),
      );
    }
    return each;
  }
}
