import { credentials, Metadata, type ChannelCredentials, type Client, type ServiceError } from "@grpc/grpc-js";
import * as ent from "../../gen/velobase/billing/v1/entitlements.js";
import * as slots from "../../gen/velobase/billing/v1/slots.js";
import { withApiKey, type PartialOf } from "./billing-client.js";

/** Promise wrappers for SlotService and EntitlementService, shaped like BillingClient. */

interface Codec {
  fromPartial(partial: never): unknown;
}

type Unary = (request: unknown, metadata: Metadata, callback: (error: ServiceError | null, response: unknown) => void) => unknown;

/** Method name → its request and response types. */
type Methods = { [method: string]: readonly [request: unknown, response: unknown] };

class UnaryClient<M extends Methods> {
  constructor(
    readonly raw: Client,
    private readonly codecs: Record<keyof M, Codec>,
    private readonly apiKey: string | null,
  ) {}

  call<K extends keyof M & string>(method: K, request: PartialOf<M[K][0]>, metadata = new Metadata()): Promise<M[K][1]> {
    const codec = this.codecs[method] as unknown as { fromPartial(partial: PartialOf<M[K][0]>): M[K][0] };
    metadata = withApiKey(metadata, this.apiKey);
    const fn = (this.raw as unknown as Record<string, Unary>)[method];
    if (!fn) throw new Error(`no method ${method}`);
    return new Promise((resolve, reject) => {
      fn.call(this.raw, codec.fromPartial(request), metadata, (error, response) => (error ? reject(error) : resolve(response as M[K][1])));
    });
  }

  close(): void {
    this.raw.close();
  }
}

type SlotMethods = {
  grantCapacity: readonly [slots.GrantCapacityRequest, slots.GrantCapacityResponse];
  revokeCapacity: readonly [slots.RevokeCapacityRequest, slots.RevokeCapacityResponse];
  claim: readonly [slots.ClaimRequest, slots.ClaimResponse];
  release: readonly [slots.ReleaseRequest, slots.ReleaseResponse];
  listPools: readonly [slots.ListPoolsRequest, slots.ListPoolsResponse];
  listSlotEvents: readonly [slots.ListSlotEventsRequest, slots.ListSlotEventsResponse];
};

/** `await new SlotClient("localhost:50051").call("claim", { customerId, wallet, resourceId })`. */
export class SlotClient extends UnaryClient<SlotMethods> {
  /** With `apiKey`, every call sends `authorization: Bearer <apiKey>` (unless the call's metadata has one). */
  constructor(address: string, channelCredentials: ChannelCredentials = credentials.createInsecure(), apiKey: string | null = null) {
    super(
      new slots.SlotServiceClient(address, channelCredentials),
      {
        grantCapacity: slots.GrantCapacityRequest,
        revokeCapacity: slots.RevokeCapacityRequest,
        claim: slots.ClaimRequest,
        release: slots.ReleaseRequest,
        listPools: slots.ListPoolsRequest,
        listSlotEvents: slots.ListSlotEventsRequest,
      },
      apiKey,
    );
  }
}

type EntitlementMethods = {
  setEntitlement: readonly [ent.SetEntitlementRequest, ent.SetEntitlementResponse];
  getEntitlement: readonly [ent.GetEntitlementRequest, ent.GetEntitlementResponse];
  listEntitlements: readonly [ent.ListEntitlementsRequest, ent.ListEntitlementsResponse];
  removeEntitlement: readonly [ent.RemoveEntitlementRequest, ent.RemoveEntitlementResponse];
  listEntitlementEvents: readonly [ent.ListEntitlementEventsRequest, ent.ListEntitlementEventsResponse];
};

/** `await new EntitlementClient("localhost:50051").call("getEntitlement", { customerId, featureKey })`. */
export class EntitlementClient extends UnaryClient<EntitlementMethods> {
  /** With `apiKey`, every call sends `authorization: Bearer <apiKey>` (unless the call's metadata has one). */
  constructor(address: string, channelCredentials: ChannelCredentials = credentials.createInsecure(), apiKey: string | null = null) {
    super(
      new ent.EntitlementServiceClient(address, channelCredentials),
      {
        setEntitlement: ent.SetEntitlementRequest,
        getEntitlement: ent.GetEntitlementRequest,
        listEntitlements: ent.ListEntitlementsRequest,
        removeEntitlement: ent.RemoveEntitlementRequest,
        listEntitlementEvents: ent.ListEntitlementEventsRequest,
      },
      apiKey,
    );
  }
}
