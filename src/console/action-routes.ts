import type { FastifyRequest } from "fastify";
import { auditOf } from "../domain/caller.js";
import { checkValidityWindow } from "../domain/validation.js";
import { BillingError } from "../errors/billing-error.js";
import { deposit } from "../operations/deposit.js";
import { getTransaction } from "../operations/get-transaction.js";
import { unfreeze } from "../operations/settle.js";
import type { AuthenticatedCaller } from "../tenancy/authenticator.js";
import { depositFormOf, depositRequestOf } from "./action-forms.js";
import { consoleCallerOf, type ConsoleScope, renderPage } from "./console-scope.js";
import { idOrNull } from "./page-queries.js";

interface ActionRoute {
  Params: { id: string };
  Body: Record<string, unknown>;
}

/** Actions need a write key, as the API's writes do. */
function writerOf(request: FastifyRequest): AuthenticatedCaller {
  const caller = consoleCallerOf(request);
  if (caller.scope !== "write") throw new BillingError("permission_denied", undefined, { required_scope: "write" });
  return caller;
}

function idOf(raw: string, code: "customer_not_found" | "transaction_not_found"): string {
  const id = idOrNull(raw);
  if (id === null) throw new BillingError(code);
  return id;
}

/**
 * Each action is a form, then a confirmation saying exactly what will happen, then the same
 * operation the API calls. The deposit form carries an idempotency key made when it was rendered,
 * an unfreeze is keyed by its transaction: submitted twice, the second is a replay.
 */
export function registerActionRoutes(scope: ConsoleScope): void {
  const { app, deps } = scope;
  const options = { config: { access: "public" as const }, onRequest: scope.signedIn, preHandler: scope.csrf };

  app.post<ActionRoute>("/customers/:id/deposit/confirm", options, async (request, reply) => {
    const caller = writerOf(request);
    const customerId = idOf(request.params.id, "customer_not_found");
    const form = depositFormOf(request.body);
    const planned = depositRequestOf(form, customerId, caller);
    // Said now, not after the operator confirmed (the deposit checks it again when it runs).
    checkValidityWindow(planned, deps.contextOf(request).now());
    return renderPage(request, reply, "confirm-deposit", "Confirm deposit", { customerId, form, planned });
  });

  app.post<ActionRoute>("/customers/:id/deposit", options, async (request, reply) => {
    const caller = writerOf(request);
    const customerId = idOf(request.params.id, "customer_not_found");
    const result = await deposit(deps.contextOf(request), depositRequestOf(depositFormOf(request.body), customerId, caller));
    return renderPage(request, reply, "deposited", "Deposit made", { result });
  });

  app.post<ActionRoute>("/transactions/:id/unfreeze/confirm", options, async (request, reply) => {
    const caller = writerOf(request);
    const transactionId = idOf(request.params.id, "transaction_not_found");
    const transaction = await getTransaction(deps.contextOf(request), { projectId: caller.projectId, transactionId });
    // Only a hold still frozen has credits to return: refused here, not after the confirmation.
    if (transaction.kind !== "FREEZE") throw new BillingError("no_unfreezable_records");
    if (transaction.status !== "FROZEN") {
      throw new BillingError("no_unfreezable_records", `This hold is ${transaction.status} already: nothing is left to unfreeze.`);
    }
    return renderPage(request, reply, "confirm-unfreeze", "Confirm unfreeze", { transaction });
  });

  app.post<ActionRoute>("/transactions/:id/unfreeze", options, async (request, reply) => {
    const caller = writerOf(request);
    const transactionId = idOf(request.params.id, "transaction_not_found");
    const result = await unfreeze(deps.contextOf(request), { ...auditOf(caller), transactionId, customerId: null });
    return renderPage(request, reply, "unfrozen", "Hold unfrozen", { result });
  });
}
