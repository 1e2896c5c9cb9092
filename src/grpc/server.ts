import { Server, ServerCredentials, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { BillingServiceService } from "../../gen/velobase/billing/v1/billing.js";
import { addReflection } from "./reflection.js";
import { withSerializedResponses } from "./unary.js";
import { withCheckedRequests } from "./request-decoding.js";

export const BILLING_SERVICE_NAME = "velobase.billing.v1.BillingService";

/** Keeps the health service in step with the database: SERVING only while it answers. */
export class HealthReporter {
  readonly implementation = new HealthImplementation({ "": "NOT_SERVING", [BILLING_SERVICE_NAME]: "NOT_SERVING" });

  set(serving: boolean): void {
    const state = serving ? "SERVING" : "NOT_SERVING";
    this.implementation.setStatus("", state);
    this.implementation.setStatus(BILLING_SERVICE_NAME, state);
  }
}

export interface GrpcServer {
  readonly server: Server;
  readonly port: number;
  /** Stops accepting calls, lets in-flight ones finish for up to `graceMs`, then cuts them. */
  shutdown(graceMs: number): Promise<void>;
}

export interface GrpcServerOptions {
  /** Plaintext when absent; see tls.ts. */
  readonly credentials?: ServerCredentials;
  /** Larger requests are refused by grpc-js with RESOURCE_EXHAUSTED before they are decoded. */
  readonly maxMessageBytes?: number;
}

export async function startGrpcServer(
  handlers: UntypedServiceImplementation,
  health: HealthReporter,
  address: string,
  options: GrpcServerOptions = {},
): Promise<GrpcServer> {
  const server = new Server(
    options.maxMessageBytes === undefined ? {} : { "grpc.max_receive_message_length": options.maxMessageBytes },
  );
  server.addService(withSerializedResponses(withCheckedRequests(BillingServiceService, BILLING_SERVICE_NAME)), handlers);
  health.implementation.addToServer(server);
  addReflection(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, options.credentials ?? ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    server,
    port,
    shutdown: (graceMs) =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
