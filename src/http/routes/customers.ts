import Type, { type Static } from "typebox";
import { deposit } from "../../operations/deposit.js";
import { getCustomer, type CustomerView } from "../../operations/get-customer.js";
import { listLedgerEntries, type LedgerEntryView, type LedgerPage } from "../../operations/list-ledger.js";
import { auditOf } from "../../domain/caller.js";
import { DEFAULT_SOURCE, EMAIL_LENGTH_MAX, NAME_LENGTH_MAX, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX } from "../../domain/limits.js";
import type { DepositResult } from "../../domain/results.js";
import type { AccountView, Balance, Operation } from "../../domain/types.js";
import { parseAmount, parseOptionalId, parseRecordId, parseSource, parseText } from "../../domain/validation.js";
import {
  businessTypeName,
  customerIdOf,
  ledgerCreditTypeOf,
  withCursorField,
  depositWalletOf,
  descriptionOf,
  idempotencyKeyOf,
  metadataOf,
  withoutNulls,
} from "../fields.js";
import { callerOf, contextOf, type HttpApp } from "../http-app.js";
import { amountFromJson, amountToJson } from "../json-amount.js";
import { msToIso, msToIsoOrNull, parseIsoField } from "../iso-time.js";
import {
  Amount,
  BUSINESS_TYPE_NAMES,
  Description,
  Id,
  IdempotentReplay,
  IsoInput,
  IsoOutput,
  MetadataInput,
  Nullable,
  OptionalNullable,
  responses,
  Source,
  WalletOrNone,
} from "../schemas.js";

// POST /v1/customers/deposit

const DepositBody = Type.Object({
  customer_id: Id("The customer; created by its first deposit."),
  amount: Amount("Credits to add: a positive integer."),
  wallet: OptionalNullable({ ...WalletOrNone, description: 'The wallet to credit (default, or empty: "default").' }),
  credit_type: OptionalNullable({ ...WalletOrNone, description: "Older name of wallet.", deprecated: true }),
  source: OptionalNullable(Source),
  starts_at: OptionalNullable(IsoInput("When the credits become spendable (default: now).")),
  expires_at: OptionalNullable(IsoInput("When they expire (default: never); in the future, after starts_at.")),
  idempotency_key: OptionalNullable(Id("Retries with the same key replay the first answer (also the Idempotency-Key header).")),
  name: OptionalNullable(Type.String({ maxLength: NAME_LENGTH_MAX })),
  email: OptionalNullable(Type.String({ maxLength: EMAIL_LENGTH_MAX })),
  metadata: OptionalNullable(MetadataInput),
  description: OptionalNullable(Description),
});

const DepositReply = Type.Object({
  customer_id: Type.String(),
  account_id: Type.String(),
  wallet: Type.String(),
  credit_type: Type.String({ description: "The wallet again, under the name Velobase's Python SDK reads." }),
  source: Type.String(),
  total_amount: Type.Integer({ description: "The account's total after the deposit." }),
  added_amount: Type.Integer(),
  starts_at: Nullable(IsoOutput),
  expires_at: Nullable(IsoOutput),
  record_id: Type.String({ description: "The deposit's ledger entry." }),
  is_idempotent_replay: IdempotentReplay,
});

const depositReply = (r: DepositResult): Static<typeof DepositReply> => ({
  customer_id: r.customerId,
  account_id: r.account.id.toString(),
  wallet: r.account.creditType,
  credit_type: r.account.creditType,
  source: r.account.source,
  total_amount: amountToJson(r.account.total),
  added_amount: amountToJson(r.addedAmount),
  starts_at: msToIsoOrNull(r.account.startsAtMs),
  expires_at: msToIsoOrNull(r.account.expiresAtMs),
  record_id: r.ledgerEntryId.toString(),
  is_idempotent_replay: r.isIdempotentReplay,
});

// GET /v1/customers/{customer_id}

const CustomerParams = Type.Object({ customer_id: Id("The customer (URL-encoded).") });
const CustomerQueryString = Type.Object({
  as_of: Type.Optional(Type.String({ description: "ISO 8601: the balances as they were then, from the ledger's entries." })),
});

const BalanceFields = {
  total: Type.Integer(),
  used: Type.Integer(),
  frozen: Type.Integer(),
  available: Type.Integer(),
};

const SourceBalance = Type.Object({
  source: Type.String(),
  ...BalanceFields,
  starts_at: Nullable(IsoOutput),
  expires_at: Nullable(IsoOutput),
});

const WalletBalance = Type.Object({ ...BalanceFields, sources: Type.Array(SourceBalance) });

/** One ACTIVE account in the older shape Velobase's Python SDK reads (`accounts`). */
const CreditAccount = Type.Object({
  account_type: Type.Literal("CREDIT"),
  credit_type: Type.String(),
  ...BalanceFields,
  starts_at: Nullable(IsoOutput),
  expires_at: Nullable(IsoOutput),
});

/**
 * Both shapes Velobase's SDKs read: `wallets` (the JS SDK) and `balance` with `accounts` (the
 * Python SDK); each ignores the fields it does not know.
 */
const CustomerReply = Type.Object({
  id: Type.String(),
  name: Nullable(Type.String()),
  email: Nullable(Type.String()),
  metadata: Nullable(Type.Record(Type.String(), Type.Unknown())),
  balance: Type.Object(BalanceFields, { description: "Over every ACTIVE account." }),
  accounts: Type.Array(CreditAccount, { description: "Every ACTIVE account, by wallet, in spending order." }),
  wallets: Type.Record(Type.String(), WalletBalance, { description: "ACTIVE credits by wallet; one source entry per account." }),
  created_at: IsoOutput,
});

const balanceJson = (b: Balance) => ({
  total: amountToJson(b.total),
  used: amountToJson(b.used),
  frozen: amountToJson(b.frozen),
  available: amountToJson(b.available),
});

const sourceJson = (a: AccountView): Static<typeof SourceBalance> => ({
  source: a.source,
  ...balanceJson(a),
  starts_at: msToIsoOrNull(a.startsAtMs),
  expires_at: msToIsoOrNull(a.expiresAtMs),
});

const creditAccountJson = (a: AccountView): Static<typeof CreditAccount> => ({
  account_type: "CREDIT",
  credit_type: a.creditType,
  ...balanceJson(a),
  starts_at: msToIsoOrNull(a.startsAtMs),
  expires_at: msToIsoOrNull(a.expiresAtMs),
});

const customerReply = (c: CustomerView): Static<typeof CustomerReply> => ({
  id: c.customerId,
  name: c.name === "" ? null : c.name,
  email: c.email === "" ? null : c.email,
  metadata: Object.keys(c.metadata).length === 0 ? null : { ...c.metadata },
  balance: balanceJson(c.balance),
  accounts: c.creditTypes.flatMap((t) => t.accounts.map(creditAccountJson)),
  wallets: Object.fromEntries(c.creditTypes.map((t) => [t.creditType, { ...balanceJson(t.balance), sources: t.accounts.map(sourceJson) }])),
  created_at: msToIso(c.createdAtMs),
});

// GET /v1/customers/{customer_id}/ledger

/**
 * Velobase's ledger speaks of GRANT, FREEZE, CONSUME, UNFREEZE and EXPIRE (both SDKs list these
 * five): a deposit is a grant, and a deduct is a consume without a hold. So a DEDUCT entry reads
 * as CONSUME here and the CONSUME filter finds both; DEPOSIT and DEDUCT are accepted as filters
 * too (DEDUCT: the deducts alone). REFUND and VOID are this service's own (Velobase has neither).
 */
const LEDGER_OPERATION_NAMES = ["GRANT", "DEPOSIT", "DEDUCT", "FREEZE", "CONSUME", "UNFREEZE", "EXPIRE", "REFUND", "VOID"] as const;
type LedgerOperationName = (typeof LEDGER_OPERATION_NAMES)[number];
const LEDGER_ITEM_OPERATION_NAMES = ["GRANT", "FREEZE", "CONSUME", "UNFREEZE", "EXPIRE", "REFUND", "VOID"] as const;
type LedgerItemOperationName = (typeof LEDGER_ITEM_OPERATION_NAMES)[number];

const LedgerQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: PAGE_SIZE_MAX, default: PAGE_SIZE_DEFAULT, description: "Entries per page." })),
  cursor: Type.Optional(Type.String({ description: "next_cursor of the previous page." })),
  credit_type: Type.Optional(Type.String({ description: "Only the entries of this credit type (as gRPC's credit_type)." })),
  wallet: Type.Optional(Type.String({ description: "Velobase's name for credit_type: either, or both the same." })),
  operation_type: Type.Optional(Type.Enum(LEDGER_OPERATION_NAMES, { description: "Only this operation (GRANT: deposits)." })),
  transaction_id: Type.Optional(Id("Only the entries of this transaction.")),
  created_after: Type.Optional(IsoInput("Only entries made at or after this time (as gRPC's created_after).")),
  created_before: Type.Optional(IsoInput("Only entries made before this time (as gRPC's created_before).")),
  reverses_transaction_id: Type.Optional(Id("Only the REFUND entries of this charge.")),
  reverses_record_id: Type.Optional(Type.String({ description: "Only the VOID entries of this deposit (its record_id)." })),
});

const LedgerItem = Type.Object({
  id: Type.String(),
  operation_type: Type.Enum(LEDGER_ITEM_OPERATION_NAMES),
  amount: Type.Integer({
    description: "Positive, the operation saying which way it moved; 0 only on an EXPIRE of an account that had nothing left.",
  }),
  wallet: Type.String(),
  credit_type: Type.String({ description: "The wallet again, under the name Velobase's Python SDK reads." }),
  source: Type.String(),
  transaction_id: Nullable(Type.String()),
  business_type: Type.Enum(BUSINESS_TYPE_NAMES),
  description: Nullable(Type.String()),
  metadata: Nullable(
    Type.Record(Type.String(), Type.Unknown(), {
      description: "The metadata of the write that made the entry, as sent (a refund's own); null when it had none.",
    }),
  ),
  account_id: Type.String(),
  status: Type.Literal("COMPLETED"),
  overage: Type.Boolean({
    description: "A CONSUME that charged beyond its hold (not from frozen credits): what replaying `frozen` from the entries needs.",
  }),
  created_at: IsoOutput,
  sequence: Type.Integer({ description: "Position in the customer's ledger: 1, 2, … without a gap, in commit order." }),
  balance_after: Type.Object(BalanceFields, { description: "The customer's ledger balance after this entry, over all credit types." }),
  reverses_transaction_id: Type.Optional(Type.String({ description: "A REFUND entry: the charge it gives credits back from." })),
  reverses_record_id: Type.Optional(Type.String({ description: "A VOID entry: the deposit (record_id) whose credits it removes." })),
});

const LedgerReply = Type.Object({
  items: Type.Array(LedgerItem, { description: "Newest first." }),
  total_count: Type.Integer({ description: "Entries matching the filters, on all pages." }),
  has_more: Type.Boolean(),
  next_cursor: Nullable(Type.String()),
});

const operationsOf = (name: LedgerOperationName): Operation[] =>
  name === "GRANT" ? ["DEPOSIT"] : name === "CONSUME" ? ["CONSUME", "DEDUCT"] : [name];

const itemOperationOf = (operation: Operation): LedgerItemOperationName =>
  operation === "DEPOSIT" ? "GRANT" : operation === "DEDUCT" ? "CONSUME" : operation;

const ledgerItem = (e: LedgerEntryView): Static<typeof LedgerItem> => ({
  id: e.id.toString(),
  operation_type: itemOperationOf(e.operation),
  amount: amountToJson(e.amount),
  wallet: e.creditType,
  credit_type: e.creditType,
  source: e.source,
  transaction_id: e.transactionId === "" ? null : e.transactionId,
  business_type: businessTypeName(e.businessType),
  description: e.description === "" ? null : e.description,
  metadata: Object.keys(e.metadata).length === 0 ? null : { ...e.metadata },
  account_id: e.accountId.toString(),
  status: "COMPLETED",
  overage: e.overage,
  created_at: msToIso(e.createdAtMs),
  sequence: amountToJson(e.sequence),
  balance_after: balanceJson(e.balanceAfter),
  ...(e.reversesTransactionId === null ? {} : { reverses_transaction_id: e.reversesTransactionId }),
  ...(e.reversesRecordId === null ? {} : { reverses_record_id: e.reversesRecordId.toString() }),
});

function ledgerReply(page: LedgerPage): Static<typeof LedgerReply> {
  if (page.totalCount === null) throw new Error("the ledger page was read without its total count");
  return {
    items: page.entries.map(ledgerItem),
    total_count: page.totalCount,
    has_more: page.nextPageToken !== "",
    next_cursor: page.nextPageToken === "" ? null : page.nextPageToken,
  };
}

/** Customer routes: deposit (write), the customer and its ledger (read). */
export function registerCustomerRoutes(app: HttpApp): void {
  app.post(
    "/v1/customers/deposit",
    { schema: { summary: "Deposit credits", tags: ["customers"], body: DepositBody, response: responses(DepositReply) } },
    async (request) => {
      const body = withoutNulls(request.body);
      const result = await deposit(contextOf(request), {
        ...auditOf(callerOf(request)),
        customerId: customerIdOf(body.customer_id),
        amount: parseAmount(amountFromJson(body.amount)),
        idempotencyKey: idempotencyKeyOf(body.idempotency_key, request.headers["idempotency-key"]),
        creditType: depositWalletOf(body.wallet, body.credit_type),
        source: parseSource(body.source ?? "", DEFAULT_SOURCE),
        startsAtMs: parseIsoField(body.starts_at, "starts_at", "invalid_starts_at"),
        expiresAtMs: parseIsoField(body.expires_at, "expires_at", "invalid_expires_at"),
        name: parseText(body.name ?? "", "name", NAME_LENGTH_MAX),
        email: parseText(body.email ?? "", "email", EMAIL_LENGTH_MAX),
        description: descriptionOf(body.description),
        metadata: metadataOf(body.metadata),
      });
      return depositReply(result);
    },
  );

  app.get(
    "/v1/customers/:customer_id",
    {
      schema: {
        summary: "A customer and its ACTIVE balances",
        tags: ["customers"],
        params: CustomerParams,
        querystring: CustomerQueryString,
        response: responses(CustomerReply),
      },
      config: { access: "read" },
    },
    async (request) => {
      const input = {
        projectId: callerOf(request).projectId,
        customerId: customerIdOf(request.params.customer_id),
        includeInactive: false,
        asOfMs: parseIsoField(request.query.as_of, "as_of", "invalid_argument"),
      };
      return customerReply(await getCustomer(contextOf(request), input));
    },
  );

  app.get(
    "/v1/customers/:customer_id/ledger",
    {
      schema: {
        summary: "A customer's ledger, newest first",
        tags: ["customers"],
        params: CustomerParams,
        querystring: LedgerQuery,
        response: responses(LedgerReply),
      },
      config: { access: "read" },
    },
    async (request) => {
      const { query } = request;
      const page = await withCursorField(
        listLedgerEntries(contextOf(request), {
          projectId: callerOf(request).projectId,
          customerId: customerIdOf(request.params.customer_id),
          operations: query.operation_type === undefined ? [] : operationsOf(query.operation_type),
          transactionId: query.transaction_id === undefined ? null : parseOptionalId(query.transaction_id, "transaction_id"),
          reversesTransactionId:
            query.reverses_transaction_id === undefined ? null : parseOptionalId(query.reverses_transaction_id, "reverses_transaction_id"),
          reversesRecordId: query.reverses_record_id === undefined ? null : parseRecordId(query.reverses_record_id, "reverses_record_id"),
          creditType: ledgerCreditTypeOf(query.credit_type, query.wallet),
          createdAfterMs: parseIsoField(query.created_after, "created_after", "invalid_argument", "up"),
          createdBeforeMs: parseIsoField(query.created_before, "created_before", "invalid_argument", "up"),
          pageSize: query.limit ?? PAGE_SIZE_DEFAULT,
          pageToken: query.cursor === undefined || query.cursor === "" ? null : query.cursor,
          countTotal: true,
        }),
      );
      return ledgerReply(page);
    },
  );
}
