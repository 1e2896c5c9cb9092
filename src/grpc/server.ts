import { Server, ServerCredentials, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { BillingServiceService } from "../../gen/velobase/billing/v1/billing.js";
import { addReflection } from "./reflection.js";

export const BILLING_SERVICE_NAME = "velobase.billing.v1.BillingService";

/** Keeps the health service in step with the database: SERVING only while it answers. */
export class HealthReporter {
  readonly implementation = new HealthImplementation({ "": "NOT_SERVING", [BILLING_SERVICE_NAME]: "NOT_SERVING" });
  private current = false;

  /** The database answered its last probe. */
  get serving(): boolean {
    return this.current;
  }

  set(serving: boolean): void {
    this.current = serving;
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

export async function startGrpcServer(
  handlers: UntypedServiceImplementation,
  health: HealthReporter,
  address: string,
): Promise<GrpcServer> {
  const server = new Server();
  server.addService(BillingServiceService, handlers);
  health.implementation.addToServer(server);
  addReflection(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
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
