import type { App } from "../../src/app.js";
import type { BillingContext } from "../../src/operations/context.js";

/**
 * The app's context with the transactions it begins counted: every transaction takes a connection
 * from the pool (runTransaction), so `count()` is how many began since the last `reset()`. The
 * pool and the database are the app's own; only `getConnection` is counted on its way through.
 */
export function countedTransactions(app: App): { readonly context: BillingContext; count(): number; reset(): void } {
  let begun = 0;
  const pool = new Proxy(app.database.pool, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (property === "getConnection") begun++;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return {
    context: { ...app.context, database: { ...app.database, pool } },
    count: () => begun,
    reset: () => {
      begun = 0;
    },
  };
}
