import type { Reader } from "../store/database.js";
import {
  allocationMismatches,
  customersWithUnflaggedAlerts,
  entriesOffTheirAccount,
  entriesOffTheirTransaction,
  keyedEntryOutcomeMismatches,
  settleOutcomeMismatches,
  transactionOutcomeMismatches,
  countOfRow as count,
  type VerifyRow,
} from "../store/verify-store.js";

/** A transaction as the lines name it: its id within its project (ids are unique per project only). */
export const transactionName = (projectId: unknown, transactionId: unknown) =>
  `transaction ${String(transactionId)} (project ${String(projectId)})`;

/** "1 ledger entry", "2 ledger entries"; with `more`, "1 more ledger entry". */
export const entries = (n: VerifyRow[string] | undefined, more?: "more") =>
  `${String(n)}${more ? " more" : ""} ledger ${count(n) === 1 ? "entry" : "entries"}`;

/**
 * The links between the tables, which the sums per account and per transaction cannot see: every
 * entry on an account and under a transaction of its own customer, each charge's allocation equal
 * to its entries account by account, every write's stored outcome present (without it a retry
 * is refused instead of replayed) and no outcome without its write, and every customer with
 * balance alerts flagged as having them.
 */
export async function verifyLinks(db: Reader): Promise<string[]> {
  const problems: string[] = [];
  for (const r of await entriesOffTheirAccount(db)) {
    const what = [
      count(r.other_customer) > 0 ? "another customer" : null,
      count(r.other_credit_type) > 0 ? "another credit type" : null,
      count(r.other_source) > 0 ? "another source" : null,
    ].filter((w) => w !== null);
    problems.push(`account ${r.account_id}: ${entries(r.entries)} (first ${r.first_entry}) of ${what.join(", ")}`);
  }
  for (const r of await entriesOffTheirTransaction(db)) {
    problems.push(`${transactionName(r.project_id, r.transaction_id)}: ${entries(r.entries)} (first ${r.first_entry}) of another customer`);
  }
  for (const r of await allocationMismatches(db)) {
    const name = r.transaction_id === null ? `missing transaction pk ${r.transaction_pk}` : transactionName(r.project_id, r.transaction_id);
    problems.push(`${name}: allocated ${r.allocated} from account ${r.account_id}, its entries took ${r.charged}`);
  }
  for (const r of await transactionOutcomeMismatches(db)) problems.push(transactionOutcomeProblem(r));
  for (const r of await settleOutcomeMismatches(db)) problems.push(settleOutcomeProblem(r));
  for (const r of await keyedEntryOutcomeMismatches(db)) problems.push(keyedOutcomeProblem(r));
  for (const r of await customersWithUnflaggedAlerts(db)) {
    problems.push(
      `customer ${r.customer_id} (project ${r.project_id}): has balance alerts, but its has_alerts is off, so its writes never fire them (the sweeper turns it on within a minute)`,
    );
  }
  return problems;
}

function settleOutcomeProblem(r: VerifyRow): string {
  const answered = r.status === "CONSUMED" ? "an Unfreeze" : "a Consume";
  return `${transactionName(r.project_id, r.transaction_id)}: status ${r.status}, but its stored SETTLE outcome is ${answered}'s`;
}

function keyedOutcomeProblem(r: VerifyRow): string {
  const what = `${String(r.scope).toLowerCase()} key ${r.idempotency_key} (project ${r.project_id})`;
  const written = r.scope === "SLOT" ? "grant or revoke events" : `${r.scope} entries`;
  if (count(r.entries) === 0) return `${what}: a stored outcome, but no ${written}`;
  if (count(r.outcomes) === 0) return `${what}: ${written}, but no stored outcome (a retry would apply again)`;
  if (count(r.outcomes) > 1) return `${what}: ${r.outcomes} stored outcomes`;
  return `${what}: its stored outcome belongs to another customer than its entries`;
}

function transactionOutcomeProblem(r: VerifyRow): string {
  const name = transactionName(r.project_id, r.idempotency_key);
  if (count(r.charges) === 0) return `${name}: a stored outcome, but no transaction`;
  if (count(r.spend) !== 1) return `${name}: ${r.spend} stored SPEND outcomes, expected 1`;
  if (count(r.settle) !== count(r.settled)) {
    return count(r.settled) === 1 ? `${name}: settled, but no stored SETTLE outcome` : `${name}: not settled, but a stored SETTLE outcome`;
  }
  return `${name}: its stored outcomes belong to another customer`;
}
