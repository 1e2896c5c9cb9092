import type { CreditWrite } from "../domain/plans/write-list.js";
import type { BillingContext } from "./context.js";
import { runList, type Settled } from "./pipeline.js";
import { sweeperContext } from "./run-write.js";

/** A group's answers (its writes', in order), or the error its own list failed with. */
export type GroupAnswers = { readonly ok: true; readonly answers: readonly Settled[] } | { readonly ok: false; readonly error: unknown };

/**
 * The sweeper's writes of a pass (groups: a customer's records, a hold's settlement) in one list:
 * one transaction, nothing waited for (SKIP LOCKED). When that list fails unexpectedly (a guard
 * that missed, a statement the database refused), each group runs again in a list of its own, so
 * that one group's failure leaves the others written.
 */
export async function runSweeperGroups(ctx: BillingContext, groups: readonly (readonly CreditWrite[])[]): Promise<GroupAnswers[]> {
  const run = (writes: readonly CreditWrite[]) => runList(sweeperContext(ctx), writes, { atomic: false, skipLocked: true });
  if (groups.length === 0) return [];
  try {
    const answers = await run(groups.flat());
    let next = 0;
    return groups.map((group) => {
      const from = next;
      next += group.length;
      return { ok: true, answers: answers.slice(from, next) };
    });
  } catch (error) {
    if (groups.length === 1) return [{ ok: false, error }];
    const each: GroupAnswers[] = [];
    for (const group of groups) {
      each.push(
        await run(group).then(
          (answers): GroupAnswers => ({ ok: true, answers }),
          (groupError: unknown): GroupAnswers => ({ ok: false, error: groupError }),
        ),
      );
    }
    return each;
  }
}
