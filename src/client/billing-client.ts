import { credentials, Metadata, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import {
  BatchRequest,
  BillingServiceClient,
  ConsumeRequest,
  DeductRequest,
  DepositRequest,
  FreezeRequest,
  GetCustomerRequest,
  GetTransactionRequest,
  ListLedgerEntriesRequest,
  RefundRequest,
  UnfreezeRequest,
  VoidDepositRequest,
  type BatchResponse,
  type ConsumeResponse,
  type DeductResponse,
  type DepositResponse,
  type FreezeResponse,
  type GetCustomerResponse,
  type GetTransactionResponse,
  type ListLedgerEntriesResponse,
  type RefundResponse,
  type UnfreezeResponse,
  type VoidDepositResponse,
} from "../../gen/velobase/billing/v1/billing.js";

/** A request with every field optional, as ts-proto's fromPartial takes it. */
export type PartialOf<T> = T extends bigint | string | number | boolean | Buffer
  ? T
  : T extends Array<infer U>
    ? Array<PartialOf<U>>
    : T extends object
      ? { [K in keyof T]?: PartialOf<T[K]> }
      : T;

interface Codec<T> {
  fromPartial(partial: PartialOf<T>): T;
}

const REQUESTS = {
  deposit: DepositRequest as Codec<DepositRequest>,
  deduct: DeductRequest as Codec<DeductRequest>,
  freeze: FreezeRequest as Codec<FreezeRequest>,
  consume: ConsumeRequest as Codec<ConsumeRequest>,
  unfreeze: UnfreezeRequest as Codec<UnfreezeRequest>,
  getCustomer: GetCustomerRequest as Codec<GetCustomerRequest>,
  getTransaction: GetTransactionRequest as Codec<GetTransactionRequest>,
  listLedgerEntries: ListLedgerEntriesRequest as Codec<ListLedgerEntriesRequest>,
  batch: BatchRequest as Codec<BatchRequest>,
  refund: RefundRequest as Codec<RefundRequest>,
  voidDeposit: VoidDepositRequest as Codec<VoidDepositRequest>,
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
  batch: BatchResponse;
  refund: RefundResponse;
  voidDeposit: VoidDepositResponse;
}

export type BillingMethod = keyof typeof REQUESTS;
export type RequestOf<M extends BillingMethod> = (typeof REQUESTS)[M] extends Codec<infer T> ? T : never;
export type ResponseOf<M extends BillingMethod> = Responses[M];

/** The call's metadata with `authorization: Bearer <apiKey>`, unless it already presents a key. */
export function withApiKey(metadata: Metadata, apiKey: string | null): Metadata {
  if (apiKey === null || metadata.get("authorization").length > 0 || metadata.get("x-api-key").length > 0) return metadata;
  const presented = metadata.clone();
  presented.set("authorization", `Bearer ${apiKey}`);
  return presented;
}

type Unary = (request: unknown, metadata: Metadata, callback: (error: ServiceError | null, response: unknown) => void) => unknown;

/**
 * A promise-returning BillingService client over the generated grpc-js one: requests may leave
 * fields out (proto3 defaults fill them), failures reject with the grpc-js ServiceError, whose
 * details `decodeStatusDetails` (grpc/status-details.ts) reads.
 */
export class BillingClient {
  readonly raw: BillingServiceClient;

  /** With `apiKey`, every call sends `authorization: Bearer <apiKey>` (unless the call's metadata has one). */
  constructor(
    address: string,
    channelCredentials: ChannelCredentials = credentials.createInsecure(),
    private readonly apiKey: string | null = null,
  ) {
    this.raw = new BillingServiceClient(address, channelCredentials);
  }

  call<M extends BillingMethod>(method: M, request: PartialOf<RequestOf<M>>, metadata = new Metadata()): Promise<ResponseOf<M>> {
    metadata = withApiKey(metadata, this.apiKey);
    const codec = REQUESTS[method] as Codec<RequestOf<M>>;
    const fn = this.raw[method] as unknown as Unary;
    return new Promise((resolve, reject) => {
      fn.call(this.raw, codec.fromPartial(request), metadata, (error, response) =>
        error ? reject(error) : resolve(response as ResponseOf<M>),
      );
    });
  }

  close(): void {
    this.raw.close();
  }
}
