import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { expect } from "vitest";
import {
  BillingServiceClient,
  ConsumeRequest,
  DeductRequest,
  DepositRequest,
  FreezeRequest,
  GetCustomerRequest,
  GetTransactionRequest,
  ListLedgerEntriesRequest,
  UnfreezeRequest,
  type ConsumeResponse,
  type DeductResponse,
  type DepositResponse,
  type FreezeResponse,
  type GetCustomerResponse,
  type GetTransactionResponse,
  type ListLedgerEntriesResponse,
  type UnfreezeResponse,
} from "../../gen/velobase/billing/v1/billing.js";
import { ERROR_CATALOG, type ErrorCode } from "../../src/errors/catalog.js";
import { decodeStatusDetails, ERROR_DOMAIN } from "../../src/errors/to-grpc-status.js";

type Unary = (request: unknown, metadata: Metadata, callback: (error: ServiceError | null, response: unknown) => void) => unknown;

interface Codec<T> {
  fromPartial(partial: DeepPartial<T>): T;
}
type DeepPartial<T> = PartialOf<T>;
type PartialOf<T> = T extends bigint | string | number | boolean | Buffer
  ? T
  : T extends Array<infer U>
    ? Array<PartialOf<U>>
    : T extends object
      ? { [K in keyof T]?: PartialOf<T[K]> }
      : T;

/** Request codec and response type of each RPC, so calls are typed end to end. */
const REQUESTS = {
  deposit: DepositRequest as Codec<DepositRequest>,
  deduct: DeductRequest as Codec<DeductRequest>,
  freeze: FreezeRequest as Codec<FreezeRequest>,
  consume: ConsumeRequest as Codec<ConsumeRequest>,
  unfreeze: UnfreezeRequest as Codec<UnfreezeRequest>,
  getCustomer: GetCustomerRequest as Codec<GetCustomerRequest>,
  getTransaction: GetTransactionRequest as Codec<GetTransactionRequest>,
  listLedgerEntries: ListLedgerEntriesRequest as Codec<ListLedgerEntriesRequest>,
};

interface Responses {
  deposit: DepositResponse;
  deduct: DeductResponse;
  freeze: FreezeResponse;
  consume: ConsumeResponse;
  unfreeze: UnfreezeResponse;
  getCustomer: GetCustomerResponse;
  getTransaction: GetTransactionResponse;
  listLedgerEntries: ListLedgerEntriesResponse;
}

type Method = keyof typeof REQUESTS;
type RequestOf<M extends Method> = (typeof REQUESTS)[M] extends Codec<infer T> ? T : never;

/** A promise-returning BillingService client built from gen/, over a real connection. */
export class TestClient {
  readonly raw: BillingServiceClient;

  constructor(port: number) {
    this.raw = new BillingServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  }

  call<M extends Method>(method: M, request: PartialOf<RequestOf<M>>, metadata = new Metadata()): Promise<Responses[M]> {
    const codec = REQUESTS[method] as Codec<RequestOf<M>>;
    const fn = this.raw[method] as unknown as Unary;
    return new Promise((resolve, reject) => {
      fn.call(this.raw, codec.fromPartial(request as DeepPartial<RequestOf<M>>), metadata, (error, response) =>
        error ? reject(error) : resolve(response as Responses[M]),
      );
    });
  }

  close(): void {
    this.raw.close();
  }
}

/** Asserts a failed call carries exactly this catalogue error; returns its ErrorInfo metadata. */
export async function expectError(
  promise: Promise<unknown>,
  code: ErrorCode,
  message?: string,
  options: { messageFree?: boolean } = {},
): Promise<Record<string, string>> {
  const error = await promise.then(
    () => {
      throw new Error(`expected ${code}, but the call succeeded`);
    },
    (e: unknown) => e as ServiceError,
  );
  const spec = ERROR_CATALOG[code];
  const { detail, info, retry } = decodeStatusDetails(error.metadata);
  expect({ status: status[error.code], code: detail?.code }).toEqual({ status: spec.grpcStatus, code });
  expect(detail?.type).toBe(spec.type);
  if (options.messageFree) expect(detail?.message).toMatch(/\S/);
  else expect(detail?.message).toBe(message ?? spec.message);
  expect(error.details).toBe(detail?.message);
  expect(info?.reason).toBe(code);
  expect(info?.domain).toBe(ERROR_DOMAIN);
  expect(retry !== undefined).toBe(spec.retryable);
  return info?.metadata ?? {};
}
