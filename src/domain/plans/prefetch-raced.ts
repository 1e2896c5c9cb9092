/**
 * A write found the hold (or charge) it names but not its customer: a Consume, Unfreeze or Refund
 * that names no customer finds it through the hold, and the hold's Freeze committed between the
 * prefetch's customer lookup and its lock on the hold (READ COMMITTED reads each statement
 * afresh). The customer was never locked, so the plan cannot run: the transaction runs again,
 * and then finds and locks the customer first, as every write does.
 */
export class PrefetchRaced extends Error {
  constructor(what: "hold" | "charge") {
    super(`a ${what}'s write committed between its customer's lookup and its own lock`);
    this.name = "PrefetchRaced";
  }
}
