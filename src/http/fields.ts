import { DEFAULT_CREDIT_TYPE, DESCRIPTION_LENGTH_MAX } from "../domain/limits.js";
import type { JsonValue, Metadata } from "../domain/types.js";
import { parseCreditType, parseCreditTypes, parseId, parseMetadata, parseOptionalId, parseText } from "../domain/validation.js";
import { BillingError } from "../errors/billing-error.js";
import { BUSINESS_TYPE_NAMES, type BusinessTypeName } from "./schemas.js";

/** HTTP fields → domain values, through the same domain parsers gRPC uses. */

/** A body with its optional fields' nulls taken as absent (`OptionalNullable` in schemas.ts). */
export type NullsAbsent<T> = { [K in keyof T]: Exclude<T[K], null> };

/** Drops the body's top-level null values: a null optional field is an absent one. */
export function withoutNulls<T extends object>(body: T): NullsAbsent<T> {
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== null)) as NullsAbsent<T>;
}

/** A comma-separated query value (`types=A,B`) as its items; absent or empty → none. */
export const commaList = (raw: string | undefined): string[] => (raw === undefined || raw === "" ? [] : raw.split(","));

export const customerIdOf = (raw: string) => parseId(raw, "customer_id", "customer_id_required");
export const transactionIdOf = (raw: string) => parseId(raw, "transaction_id", "transaction_id_required");
export const optionalCustomerIdOf = (raw: string | undefined) => (raw === undefined ? null : parseOptionalId(raw, "customer_id"));
export const descriptionOf = (raw: string | undefined) => parseText(raw ?? "", "description", DESCRIPTION_LENGTH_MAX);

function isJsonValue(value: unknown): value is JsonValue {
  if (value === null || typeof value === "string" || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(isJsonValue);
  if (typeof value === "object") return Object.values(value).every(isJsonValue);
  return false;
}

/** Any JSON object, kept as given (within the metadata limits). */
export function metadataOf(raw: Readonly<Record<string, unknown>> | undefined): Metadata {
  const entries = Object.entries(raw ?? {});
  for (const [, value] of entries) {
    if (!isJsonValue(value)) throw new BillingError("invalid_argument", "metadata must be a JSON object.", { field: "metadata" });
  }
  // fromEntries keeps a key named __proto__ as an own property (an assignment would set the prototype).
  return parseMetadata(Object.fromEntries(entries) as Record<string, JsonValue>);
}

/**
 * `wallet`, or its older name `credit_type`; both given and different is a contradiction. Empty is
 * none given (the default wallet), as gRPC's unset credit_type.
 */
export function depositWalletOf(wallet: string | undefined, creditType: string | undefined): string {
  const [given, older] = [wallet || undefined, creditType || undefined];
  if (given !== undefined && older !== undefined && given !== older) {
    throw new BillingError("invalid_argument", "wallet and credit_type differ; send wallet only.", { field: "wallet" });
  }
  return parseCreditType(given ?? older ?? "", DEFAULT_CREDIT_TYPE, "wallet");
}

/** A listing's credit-type filter: `credit_type`, or Velobase's `wallet`, or both the same; neither (or empty, as over gRPC): every credit type. */
export function ledgerCreditTypeOf(creditType: string | undefined, wallet: string | undefined): string | null {
  const [ours, velobase] = [creditType || null, wallet || null];
  if (ours !== null && velobase !== null && ours !== velobase) {
    throw new BillingError("invalid_argument", "wallet and credit_type differ; send one of them.", { field: "wallet" });
  }
  if (ours !== null) return parseCreditType(ours, null, "credit_type");
  return velobase === null ? null : parseCreditType(velobase, null, "wallet");
}

/** The wallets a spend may use: `wallet`, or `credit_types`, or all (neither). */
export function spendWalletsOf(wallet: string | undefined, creditTypes: readonly string[] | undefined): string[] {
  if (wallet !== undefined && creditTypes !== undefined) {
    throw new BillingError("invalid_argument", "Send wallet or credit_types, not both.", { field: "wallet" });
  }
  if (wallet !== undefined) return [parseCreditType(wallet, null, "wallet")];
  return parseCreditTypes(creditTypes ?? []);
}

/**
 * The body's key or the Idempotency-Key header (the same key may come both ways, and the header
 * twice: Node joins repeated headers with ", ", and a key holds no comma). A header sent empty is
 * refused as an empty body key is: it is a client's unset variable, and taken as "no key" every
 * retry would apply again.
 */
export function idempotencyKeyOf(body: string | undefined, header: string | string[] | undefined): string | null {
  const fromHeader = headerKeyOf(header);
  const given = [body, fromHeader].filter((k): k is string => k !== undefined && k !== "");
  if (given.length === 2 && given[0] !== given[1]) {
    throw new BillingError("invalid_argument", "The Idempotency-Key header and idempotency_key differ.", {
      field: "idempotency_key",
    });
  }
  return parseOptionalId(given[0] ?? "", "idempotency_key");
}

function headerKeyOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const keys = new Set((Array.isArray(header) ? header : [header]).flatMap((h) => h.split(",")).map((k) => k.trim()));
  if (keys.has("")) throw new BillingError("invalid_argument", "The Idempotency-Key header is empty.", { field: "idempotency_key" });
  if (keys.size > 1)
    throw new BillingError("invalid_argument", "The Idempotency-Key header holds different keys.", { field: "idempotency_key" });
  return [...keys][0];
}

/** Stored business types are the proto enum's numbers, which BUSINESS_TYPE_NAMES lists in order. */
export function businessTypeOf(name: BusinessTypeName | undefined): number {
  return BUSINESS_TYPE_NAMES.indexOf(name ?? "UNDEFINED");
}

export function businessTypeName(value: number): BusinessTypeName {
  const name = BUSINESS_TYPE_NAMES[value];
  if (name === undefined) throw new Error(`stored business type ${value} is unknown`);
  return name;
}

/** The operation names its cursor page_token, as gRPC does; this API calls it cursor. */
export async function withCursorField<T>(run: Promise<T>): Promise<T> {
  try {
    return await run;
  } catch (error) {
    if (error instanceof BillingError && error.code === "invalid_page_token") {
      throw new BillingError("invalid_page_token", "cursor is not valid for this request.", { field: "cursor" }, { cause: error });
    }
    throw error;
  }
}
