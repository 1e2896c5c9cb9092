import Type, { type TSchema } from "typebox";
import {
  AMOUNT_MAX,
  CREDIT_TYPE_PATTERN,
  CREDIT_TYPES_PER_REQUEST_MAX,
  DESCRIPTION_LENGTH_MAX,
  ID_PATTERN,
  SOURCE_OR_NONE_PATTERN,
} from "../domain/limits.js";
import { BUSINESS_TYPE_NAMES } from "../domain/types.js";

/**
 * The JSON schemas every route shares. Each is declared once and serves request validation (the
 * TypeBox compiler), the handlers' types (Static<>) and /openapi.json (@fastify/swagger).
 */

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/**
 * An optional request field: absent or JSON null, which both mean "not given" (Velobase's Python
 * SDK sends None as null). Handlers drop the nulls with `withoutNulls` (fields.ts) before parsing.
 */
export const OptionalNullable = <T extends TSchema>(schema: T) => Type.Optional(Nullable(schema));

export const Id = (description: string) => Type.String({ pattern: ID_PATTERN.source, description });

/** An id a request may leave out: absent, null or empty (as an unset proto3 string over gRPC) all mean none. */
export const OptionalId = (description: string) =>
  OptionalNullable(Type.String({ pattern: `^$|${ID_PATTERN.source}`, description: `${description} Empty or null: none.` }));

export const Amount = (description: string) => Type.Integer({ minimum: 1, maximum: Number(AMOUNT_MAX), description });

export const Wallet = Type.String({
  pattern: CREDIT_TYPE_PATTERN.source,
  description: "A wallet (this service's credit type): 1-64 characters of [a-z0-9_.-].",
});

/** A deposit's wallet: empty is none given (the default wallet), as an unset credit_type over gRPC. */
export const WalletOrNone = Type.String({
  pattern: `^$|${CREDIT_TYPE_PATTERN.source}`,
  description: "A wallet (this service's credit type): 1-64 characters of [a-z0-9_.-]; empty: none given.",
});

export const Wallets = Type.Array(Wallet, {
  maxItems: CREDIT_TYPES_PER_REQUEST_MAX,
  description: "Spend only from these wallets (all when absent).",
});

/** Empty means none given, as over gRPC (the operation's default source). */
export const Source = Type.String({
  pattern: SOURCE_OR_NONE_PATTERN.source,
  description: "Where the credits came from (empty: the default).",
});

export const IsoInput = (description: string) =>
  Type.String({
    description: `${description} ISO 8601: a date (midnight UTC) or a date-time, with an optional offset (none means UTC).`,
    examples: ["2026-01-01T00:00:00.000Z", "2026-01-01T08:00:00+08:00", "2026-01-01"],
  });

export const IsoOutput = Type.String({ format: "date-time", description: "UTC with milliseconds." });

export const Description = Type.String({ maxLength: DESCRIPTION_LENGTH_MAX });

export const MetadataInput = Type.Record(Type.String(), Type.Unknown(), {
  description: "Any JSON object (at most 32 keys), stored as given.",
});

export { BUSINESS_TYPE_NAMES };
export type BusinessTypeName = (typeof BUSINESS_TYPE_NAMES)[number];

export const BusinessType = Type.Enum(BUSINESS_TYPE_NAMES, { description: "What the spend is for (default UNDEFINED)." });

export const IdempotentReplay = Type.Boolean({ description: "True when this answer replays an earlier call's." });

/** One account touched by a spend or a settlement. */
export const AllocationDetail = Type.Object({
  account_id: Type.String(),
  wallet: Type.String(),
  source: Type.String(),
  amount: Type.Integer(),
});

/** One account charged by a consume (overage included). */
export const ConsumeDetail = Type.Object({
  account_id: Type.String(),
  wallet: Type.String(),
  source: Type.String(),
  consumed: Type.Integer(),
});

/** Velobase's error body. */
export const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.String({ description: "A code from the error catalogue (docs/errors.md)." }),
    type: Type.String(),
    message: Type.String(),
    details: Type.Record(Type.String(), Type.Unknown(), {
      description: "Facts about the failure, such as field, requested, available.",
    }),
    retryable: Type.Boolean(),
    request_id: Type.String(),
  }),
});

/** The responses of a route: its success schema and the error body for every failure. */
export const responses = <T extends TSchema>(ok: T) => ({ 200: ok, "4xx": ErrorBody, "5xx": ErrorBody });
