import Type, { type Static } from "typebox";
import { auditOf } from "../../domain/caller.js";
import { parseId, parseOptionalAmount, parseRecordId, parseText } from "../../domain/validation.js";
import { DESCRIPTION_LENGTH_MAX } from "../../domain/limits.js";
import type { Balance } from "../../domain/types.js";
import { type RefundResult, refund, type VoidResult, voidDeposit } from "../../operations/reversal.js";
import { customerIdOf, metadataOf, optionalCustomerIdOf, transactionIdOf, withoutNulls } from "../fields.js";
import { callerOf, contextOf, type HttpApp } from "../http-app.js";
import { msToIso } from "../iso-time.js";
import { amountFromJson, amountToJson } from "../json-amount.js";
import {
  Amount,
  Description,
  Id,
  IdempotentReplay,
  IsoOutput,
  MetadataInput,
  OptionalId,
  OptionalNullable,
  responses,
} from "../schemas.js";

// POST /v1/billing/refund and POST /v1/customers/deposit/void (write keys).

const RefundBody = Type.Object({
  transaction_id: Id("The charge: a Deduct's, or a consumed Freeze's, transaction_id."),
  refund_id: Id("Your id of this refund; retries with the same id replay the first answer."),
  amount: OptionalNullable(Amount("Credits to give back (default: all that is still refundable).")),
  customer_id: OptionalId("When given, the charge must be this customer's."),
  reason: OptionalNullable(Description),
  metadata: OptionalNullable(MetadataInput),
});

const VoidBody = Type.Object({
  customer_id: Id("The customer the deposit was made for."),
  record_id: Type.String({ pattern: "^[1-9][0-9]{0,19}$", description: "The deposit's record_id, as Deposit answered it." }),
  void_id: Id("Your id of this void; retries with the same id replay the first answer."),
  amount: OptionalNullable(Amount("Credits to remove (default: as much of the deposit as its account still has available).")),
});

const BalanceReply = Type.Object({
  total: Type.Integer(),
  used: Type.Integer(),
  frozen: Type.Integer(),
  available: Type.Integer(),
});

const RefundDetail = Type.Object({
  account_id: Type.String(),
  wallet: Type.String(),
  amount: Type.Integer(),
  expired: Type.Boolean({
    description: "The account is past its expiry, or its expiry is on the ledger already: these credits are not spendable again.",
  }),
});

const RefundReply = Type.Object({
  refund_id: Type.String(),
  transaction_id: Type.String(),
  refunded_amount: Type.Integer(),
  restored_amount: Type.Integer({ description: "Back in accounts still unexpired." }),
  expired_amount: Type.Integer({ description: "Back in accounts past their expiry, expired at once." }),
  refund_details: Type.Array(RefundDetail, { description: "One per account, latest-expiring first." }),
  refunded_at: IsoOutput,
  balance: BalanceReply,
  is_idempotent_replay: IdempotentReplay,
});

const VoidReply = Type.Object({
  void_id: Type.String(),
  record_id: Type.String(),
  voided_amount: Type.Integer(),
  voided_at: IsoOutput,
  balance: BalanceReply,
  is_idempotent_replay: IdempotentReplay,
});

const balanceJson = (b: Balance): Static<typeof BalanceReply> => ({
  total: amountToJson(b.total),
  used: amountToJson(b.used),
  frozen: amountToJson(b.frozen),
  available: amountToJson(b.available),
});

const refundReply = (r: RefundResult): Static<typeof RefundReply> => ({
  refund_id: r.refundId,
  transaction_id: r.transactionId,
  refunded_amount: amountToJson(r.refundedAmount),
  restored_amount: amountToJson(r.restoredAmount),
  expired_amount: amountToJson(r.expiredAmount),
  refund_details: r.details.map((d) => ({
    account_id: d.accountId.toString(),
    wallet: d.creditType,
    amount: amountToJson(d.amount),
    expired: d.expired,
  })),
  refunded_at: msToIso(r.atMs),
  balance: balanceJson(r.balance),
  is_idempotent_replay: r.isIdempotentReplay,
});

const voidReply = (r: VoidResult): Static<typeof VoidReply> => ({
  void_id: r.voidId,
  record_id: r.recordId.toString(),
  voided_amount: amountToJson(r.voidedAmount),
  voided_at: msToIso(r.atMs),
  balance: balanceJson(r.balance),
  is_idempotent_replay: r.isIdempotentReplay,
});

const optionalAmount = (value: number | undefined) => parseOptionalAmount(value === undefined ? undefined : amountFromJson(value));

export function registerReversalRoutes(app: HttpApp): void {
  app.post(
    "/v1/billing/refund",
    {
      schema: {
        summary: "Refund a charge to the accounts it came from",
        tags: ["billing"],
        body: RefundBody,
        response: responses(RefundReply),
      },
    },
    async (request) => {
      const body = withoutNulls(request.body);
      const result = await refund(contextOf(request), {
        ...auditOf(callerOf(request)),
        transactionId: transactionIdOf(body.transaction_id),
        refundId: parseId(body.refund_id, "refund_id"),
        amount: optionalAmount(body.amount),
        customerId: optionalCustomerIdOf(body.customer_id),
        reason: parseText(body.reason ?? "", "reason", DESCRIPTION_LENGTH_MAX),
        metadata: metadataOf(body.metadata),
      });
      return refundReply(result);
    },
  );

  app.post(
    "/v1/customers/deposit/void",
    {
      schema: { summary: "Void credits a deposit granted by mistake", tags: ["customers"], body: VoidBody, response: responses(VoidReply) },
    },
    async (request) => {
      const body = withoutNulls(request.body);
      const result = await voidDeposit(contextOf(request), {
        ...auditOf(callerOf(request)),
        customerId: customerIdOf(body.customer_id),
        recordId: parseRecordId(body.record_id),
        voidId: parseId(body.void_id, "void_id"),
        amount: optionalAmount(body.amount),
      });
      return voidReply(result);
    },
  );
}
