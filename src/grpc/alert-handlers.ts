import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import { type Alert, AlertState as ProtoAlertState, type AlertServiceServer } from "../../gen/velobase/billing/v1/alerts.js";
import { type AlertState, type BalanceAlert, parseThreshold } from "../domain/balance-alerts.js";
import { ALERT_PAGE_SIZE_DEFAULT } from "../domain/limits.js";
import { parseCreditType, parseId } from "../domain/validation.js";
import type { BillingContext } from "../operations/context.js";
import { deleteAlert, listAlerts, setAlert, type AlertTarget } from "../operations/alerts.js";
import { timestamp } from "./format-responses.js";
import { parsePageSize } from "./parse-requests.js";
import { type GuardedEnvironment, guardedIn } from "./unary.js";

const PROTO_STATES: Record<AlertState, ProtoAlertState> = {
  armed: ProtoAlertState.ALERT_STATE_ARMED,
  low: ProtoAlertState.ALERT_STATE_LOW,
  depleted: ProtoAlertState.ALERT_STATE_DEPLETED,
};

const alertMessage = (a: BalanceAlert): Alert => ({
  alertId: a.alertId.toString(),
  customerId: a.customerId,
  creditType: a.creditType ?? undefined,
  threshold: a.threshold,
  state: PROTO_STATES[a.state],
  createdAt: timestamp(a.createdAtMs),
  updatedAt: timestamp(a.updatedAtMs),
});

const targetOf = (r: { customerId: string; creditType?: string | undefined }, projectId: bigint): AlertTarget => ({
  projectId,
  customerId: parseId(r.customerId, "customer_id", "customer_id_required"),
  creditType: r.creditType === undefined || r.creditType === "" ? null : parseCreditType(r.creditType, null),
});

/** AlertService: set and delete need a write key, list a read key. */
export function alertHandlers(ctx: BillingContext, env: GuardedEnvironment): AlertServiceServer & UntypedServiceImplementation {
  const call = guardedIn(ctx, env);
  return {
    setAlert: call("SetAlert", "write", async (r, caller, context) => {
      const result = await setAlert(context, { ...targetOf(r, caller.projectId), threshold: parseThreshold(r.threshold) });
      return { alert: alertMessage(result.alert), created: result.created };
    }),
    listAlerts: call("ListAlerts", "read", async (r, caller, context) => {
      const page = await listAlerts(context, {
        projectId: caller.projectId,
        customerId: r.customerId === "" ? null : parseId(r.customerId, "customer_id", "customer_id_required"),
        pageSize: parsePageSize(r.pageSize, ALERT_PAGE_SIZE_DEFAULT),
        pageToken: r.pageToken === "" ? null : r.pageToken,
      });
      return { alerts: page.alerts.map(alertMessage), nextPageToken: page.nextPageToken };
    }),
    deleteAlert: call("DeleteAlert", "write", async (r, caller, context) => ({
      deleted: await deleteAlert(context, targetOf(r, caller.projectId)),
    })),
  };
}
