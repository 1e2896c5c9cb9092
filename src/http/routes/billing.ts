import Type, { type Static } from "typebox";
import { consume, unfreeze } from "../../operations/settle.js";
import { deduct, freeze, type SpendInput } from "../../operations/spend.js";
import { auditOf, requestIdOf, type Caller } from "../../domain/caller.js";
import { AMOUNT_MAX } from "../../domain/limits.js";
import type { ConsumeResult, SpendResult, UnfreezeResult } from "../../domain/results.js";
import type { AllocationLine } from "../../domain/types.js";
import { parseActualAmount, parseAmount, parseAutoSettlement } from "../../domain/validation.js";
import {
  businessTypeOf,
  customerIdOf,
  descriptionOf,
  metadataOf,
  optionalCustomerIdOf,
  spendWalletsOf,
  transactionIdOf,
  withoutNulls,
  type NullsAbsent,
} from "../fields.js";
import { callerOf, contextOf, type HttpApp } from "../http-app.js";
import { amountFromJson, amountToJson } from "../json-amount.js";
import { msToIso, msToIsoOrNull } from "../iso-time.js";
import {
  AllocationDetail,
  Amount,
  BusinessType,
  ConsumeDetail,
  Description,
  Id,
  IdempotentReplay,
  IsoOutput,
  MetadataInput,
  Nullable,
  OptionalId,
  OptionalNullable,
  responses,
  Wallet,
  Wallets,
} from "../schemas.js";

// Request bodies

const SpendFields = {
  customer_id: Id("The customer to charge."),
  amount: Amount("Credits: a positive integer."),
  transaction_id: Id("Your id of this charge; retries with the same id replay the first answer."),
  wallet: OptionalNullable({ ...Wallet, description: "Spend from this wallet only (all wallets when neither this nor credit_types)." }),
  credit_types: OptionalNullable(Wallets),
  business_type: OptionalNullable(BusinessType),
  description: OptionalNullable(Description),
  metadata: OptionalNullable(MetadataInput),
};

const DeductBody = Type.Object(SpendFields);

const FreezeBody = Type.Object({
  ...SpendFields,
  unfreeze_after_seconds: OptionalNullable(Type.Integer({ description: "Unfreeze automatically after 1-2592000 s." })),
  consume_after_seconds: OptionalNullable(Type.Integer({ description: "Consume automatically after 1-604800 s." })),
});

const ConsumeBody = Type.Object({
  transaction_id: Id("The hold to settle."),
  actual_amount: OptionalNullable(
    Type.Integer({ minimum: 0, maximum: Number(AMOUNT_MAX), description: "What to charge (default: the frozen amount)." }),
  ),
  customer_id: OptionalId("When given, the hold must be this customer's."),
  allow_overage: OptionalNullable(
    Type.Boolean({ default: true, description: "Charge an actual_amount above the hold from the same wallets (default true)." }),
  ),
});

const UnfreezeBody = Type.Object({
  transaction_id: Id("The hold to release."),
  customer_id: OptionalId("When given, the hold must be this customer's."),
});

// Replies

const DeductReply = Type.Object({
  transaction_id: Type.String(),
  deducted_amount: Type.Integer(),
  deduct_details: Type.Array(AllocationDetail),
  deducted_at: IsoOutput,
  is_idempotent_replay: IdempotentReplay,
});

const FreezeReply = Type.Object({
  transaction_id: Type.String(),
  frozen_amount: Type.Integer(),
  freeze_details: Type.Array(AllocationDetail),
  unfreeze_after: Nullable(IsoOutput),
  consume_after: Nullable(IsoOutput),
  is_idempotent_replay: IdempotentReplay,
});

const ConsumeReply = Type.Object({
  transaction_id: Type.String(),
  consumed_amount: Type.Integer(),
  returned_amount: Type.Optional(Type.Integer({ description: "Present only when above 0." })),
  overage_amount: Type.Optional(Type.Integer({ description: "Present only when above 0." })),
  consume_details: Type.Array(ConsumeDetail),
  consumed_at: IsoOutput,
  is_idempotent_replay: IdempotentReplay,
});

const UnfreezeReply = Type.Object({
  transaction_id: Type.String(),
  unfrozen_amount: Type.Integer(),
  unfreeze_details: Type.Array(AllocationDetail),
  unfrozen_at: IsoOutput,
  is_idempotent_replay: IdempotentReplay,
});

const detail = (l: AllocationLine) => ({
  account_id: l.accountId.toString(),
  wallet: l.creditType,
  source: l.source,
  amount: amountToJson(l.amount),
});

/** A positive amount, or nothing: Velobase omits these fields when they are 0. */
const whenPositive = <K extends string>(key: K, amount: bigint): Partial<Record<K, number>> =>
  amount > 0n ? ({ [key]: amountToJson(amount) } as Record<K, number>) : {};

const deductReply = (r: SpendResult): Static<typeof DeductReply> => ({
  transaction_id: r.transactionId,
  deducted_amount: amountToJson(r.amount),
  deduct_details: r.details.map(detail),
  deducted_at: msToIso(r.atMs),
  is_idempotent_replay: r.isIdempotentReplay,
});

const freezeReply = (r: SpendResult): Static<typeof FreezeReply> => ({
  transaction_id: r.transactionId,
  frozen_amount: amountToJson(r.amount),
  freeze_details: r.details.map(detail),
  unfreeze_after: msToIsoOrNull(r.unfreezeAtMs),
  consume_after: msToIsoOrNull(r.consumeAtMs),
  is_idempotent_replay: r.isIdempotentReplay,
});

const consumeReply = (r: ConsumeResult): Static<typeof ConsumeReply> => ({
  transaction_id: r.transactionId,
  consumed_amount: amountToJson(r.consumedAmount),
  ...whenPositive("returned_amount", r.returnedAmount),
  ...whenPositive("overage_amount", r.overageAmount),
  consume_details: r.details.map((l) => {
    const { amount, ...rest } = detail(l);
    return { ...rest, consumed: amount };
  }),
  consumed_at: msToIso(r.atMs),
  is_idempotent_replay: r.isIdempotentReplay,
});

const unfreezeReply = (r: UnfreezeResult): Static<typeof UnfreezeReply> => ({
  transaction_id: r.transactionId,
  unfrozen_amount: amountToJson(r.unfrozenAmount),
  unfreeze_details: r.details.map(detail),
  unfrozen_at: msToIso(r.atMs),
  is_idempotent_replay: r.isIdempotentReplay,
});

function spendInputOf(body: NullsAbsent<Static<typeof DeductBody>>, caller: Caller): SpendInput {
  return {
    ...auditOf(caller),
    ...requestIdOf(caller),
    customerId: customerIdOf(body.customer_id),
    transactionId: transactionIdOf(body.transaction_id),
    amount: parseAmount(amountFromJson(body.amount)),
    creditTypes: spendWalletsOf(body.wallet, body.credit_types),
    businessType: businessTypeOf(body.business_type),
    description: descriptionOf(body.description),
    metadata: metadataOf(body.metadata),
  };
}

const optionalBigint = (value: number | undefined) => (value === undefined ? undefined : BigInt(value));

/** Billing routes: deduct, freeze, consume, unfreeze (write keys). */
export function registerBillingRoutes(app: HttpApp): void {
  const tags = ["billing"];

  app.post(
    "/v1/billing/deduct",
    { schema: { summary: "Deduct credits in one step", tags, body: DeductBody, response: responses(DeductReply) } },
    async (request) => {
      const input = spendInputOf(withoutNulls(request.body), callerOf(request));
      return deductReply(await deduct(contextOf(request), input));
    },
  );

  app.post(
    "/v1/billing/freeze",
    { schema: { summary: "Freeze credits", tags, body: FreezeBody, response: responses(FreezeReply) } },
    async (request) => {
      const body = withoutNulls(request.body);
      const input = {
        ...spendInputOf(body, callerOf(request)),
        autoSettlement: parseAutoSettlement(optionalBigint(body.unfreeze_after_seconds), optionalBigint(body.consume_after_seconds)),
      };
      return freezeReply(await freeze(contextOf(request), input));
    },
  );

  app.post(
    "/v1/billing/consume",
    { schema: { summary: "Consume a hold", tags, body: ConsumeBody, response: responses(ConsumeReply) } },
    async (request) => {
      const body = withoutNulls(request.body);
      const result = await consume(contextOf(request), {
        ...auditOf(callerOf(request)),
        transactionId: transactionIdOf(body.transaction_id),
        customerId: optionalCustomerIdOf(body.customer_id),
        actualAmount: parseActualAmount(optionalBigint(body.actual_amount)),
        allowOverage: body.allow_overage ?? true,
      });
      return consumeReply(result);
    },
  );

  app.post(
    "/v1/billing/unfreeze",
    { schema: { summary: "Release a hold", tags, body: UnfreezeBody, response: responses(UnfreezeReply) } },
    async (request) => {
      const body = withoutNulls(request.body);
      const result = await unfreeze(contextOf(request), {
        ...auditOf(callerOf(request)),
        transactionId: transactionIdOf(body.transaction_id),
        customerId: optionalCustomerIdOf(body.customer_id),
      });
      return unfreezeReply(result);
    },
  );
}
