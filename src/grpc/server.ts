import { randomUUID } from "node:crypto";
import type { Http2Server, ServerHttp2Stream } from "node:http2";
import {
  type ChannelOptions,
  type handleServerStreamingCall,
  Server,
  ServerCredentials,
  type ServerWritableStream,
  type ServiceDefinition,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { cutAfterGrace, type InFlightCalls } from "../operations/in-flight-calls.js";
import { HealthImplementation } from "grpc-health-check";
import { BillingServiceService } from "../../gen/velobase/billing/v1/billing.js";
import { addReflection } from "./reflection.js";
import { REQUEST_ID_HEADER, saneRequestId, withSerializedResponses } from "./unary.js";
import { withCheckedRequests } from "./request-decoding.js";
import { endSpanOnCancel } from "../telemetry/cancelled-stream.js";
import { type ConnectionLimits, limitConnections } from "../tenancy/connection-limits.js";

export const BILLING_SERVICE_NAME = "velobase.billing.v1.BillingService";
export const SLOT_SERVICE_NAME = "velobase.billing.v1.SlotService";
export const ENTITLEMENT_SERVICE_NAME = "velobase.billing.v1.EntitlementService";
export const EVENT_SERVICE_NAME = "velobase.billing.v1.EventService";
export const ALERT_SERVICE_NAME = "velobase.billing.v1.AlertService";
const SERVICE_NAMES = [
  "",
  BILLING_SERVICE_NAME,
  SLOT_SERVICE_NAME,
  ENTITLEMENT_SERVICE_NAME,
  EVENT_SERVICE_NAME,
  ALERT_SERVICE_NAME,
] as const;

/** Keeps the health service in step with the database: SERVING only while it answers. */
export class HealthReporter {
  readonly implementation = new HealthImplementation(Object.fromEntries(SERVICE_NAMES.map((name) => [name, "NOT_SERVING"])));
  private current = false;
  private stopping = false;
  /** Open Health/Watch streams: a shutdown ends them, as it ends WatchEvents. */
  private readonly watches = new Set<ServerWritableStream<unknown, unknown>>();

  /** Serves grpc.health.v1.Health (grpc-health-check's handlers), its Watch streams counted. */
  addTo(server: Server): void {
    const watches = this.watches;
    const counting = {
      addService(definition: ServiceDefinition, handlers: UntypedServiceImplementation) {
        const watch = handlers.watch as handleServerStreamingCall<unknown, unknown>;
        server.addService(definition, {
          ...handlers,
          watch: (call: ServerWritableStream<unknown, unknown>) => {
            watches.add(call);
            endSpanOnCancel(call);
            call.once("cancelled", () => watches.delete(call));
            watch(call);
          },
        });
      },
    };
    this.implementation.addToServer(counting as unknown as Server);
  }

  /**
   * Ends every open Watch with UNAVAILABLE (after NOT_SERVING went out to it): a watch never ends by
   * itself, so it would hold a graceful shutdown for its whole grace period.
   */
  endWatches(): void {
    for (const call of this.watches) call.emit("error", { code: status.UNAVAILABLE, details: "The server is shutting down." });
    this.watches.clear();
  }

  /** Why the instance does not serve now (HTTP's health says it): its shutdown, or its database; null while it serves. */
  get notServing(): NotServingReason | null {
    if (this.stopping) return "stopping";
    return this.current ? null : "database_unreachable";
  }

  /** Whether the database answered its last probe. */
  set(serving: boolean): void {
    this.current = serving;
    this.publish();
  }

  /** NOT_SERVING for good: the instance is shutting down. */
  stop(): void {
    this.stopping = true;
    this.publish();
  }

  private publish(): void {
    const state = this.notServing === null ? "SERVING" : "NOT_SERVING";
    for (const name of SERVICE_NAMES) this.implementation.setStatus(name, state);
  }
}

export type NotServingReason = "stopping" | "database_unreachable";

/** A service served beside BillingService (SlotService, EntitlementService). */
export interface ServiceBinding {
  /** The fully qualified name, whose descriptor checks the requests (request-decoding.ts). */
  readonly name: string;
  readonly definition: ServiceDefinition;
  readonly handlers: UntypedServiceImplementation;
}

export interface GrpcServer {
  readonly server: Server;
  readonly port: number;
  /**
   * Stops accepting calls and lets in-flight ones finish for up to `graceMs`; then answers those
   * still open service_unavailable (`inFlight`) and cuts the connections. Resolves to how many it
   * answered so.
   */
  shutdown(graceMs: number): Promise<number>;
}

export interface GrpcServerOptions {
  /** Plaintext when absent; see tls.ts. */
  readonly credentials?: ServerCredentials;
  /** Larger requests are refused by grpc-js with RESOURCE_EXHAUSTED before they are decoded. */
  readonly maxMessageBytes?: number;
  /** Services beside BillingService (SlotService, EntitlementService). */
  readonly services?: readonly ServiceBinding[];
  /** The open connections the listener holds (connection-limits.ts); unlimited when absent. */
  readonly connections?: ConnectionLimits;
  /** A connection with no call open this long is closed with GOAWAY (clients reconnect on their next call). */
  readonly idleTimeoutMs?: number;
  /**
   * How often the server pings a client's connection; one that does not answer within the same
   * time (at most 20 s) is closed, with its calls: a client that vanished without closing its
   * connection would otherwise keep its WatchEvents streams, and their places, for good.
   */
  readonly keepaliveMs?: number;
  /** The unary calls in flight (the handlers' environment holds the same registry). */
  readonly inFlight?: InFlightCalls;
}

const KEEPALIVE_TIMEOUT_MAX_MS = 20_000;

/** grpc-js's channel options for the limits in `options`. */
function serverOptionsOf(options: GrpcServerOptions): ChannelOptions {
  return {
    ...(options.maxMessageBytes === undefined ? {} : { "grpc.max_receive_message_length": options.maxMessageBytes }),
    ...(options.idleTimeoutMs === undefined ? {} : { "grpc.max_connection_idle_ms": options.idleTimeoutMs }),
    ...(options.keepaliveMs === undefined
      ? {}
      : {
          "grpc.keepalive_time_ms": options.keepaliveMs,
          "grpc.keepalive_timeout_ms": Math.min(options.keepaliveMs, KEEPALIVE_TIMEOUT_MAX_MS),
        }),
  };
}

/** The headers that present an API key: each must arrive once (tenancy/credentials.ts). */
const KEY_HEADERS = ["authorization", "x-api-key"] as const;

/**
 * grpc-js's HTTP/2 servers, one per bound address. grpc-js keeps them in a private field: a
 * version without it fails the start instead of going without the listener and limits below.
 */
function http2ServersOf(server: Server): Http2Server[] {
  const http2Servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
  if (!(http2Servers instanceof Map) || http2Servers.size === 0)
    throw new Error("grpc-js keeps no http2Servers: cannot read raw headers nor limit connections");
  return [...http2Servers.keys()];
}

/**
 * A listener that runs before grpc-js's on every HTTP/2 stream:
 * - Node's HTTP/2 layer keeps only the first of two `authorization` headers and joins two
 *   `x-api-key` headers with ", ", so grpc-js would never see that a call presents two keys. The
 *   listener puts every raw value back (an array: one metadata value each), so the call is refused
 *   as invalid_api_key, as over HTTP.
 * - Every response carries `x-request-id`, those grpc-js answers itself included (an unknown
 *   method, a deadline that passed, a message over the limit, the health service): the listener
 *   gives the call its id (the caller's when sane, else a new one, which `unary` then reads from
 *   the metadata) and adds it to whatever header block the stream sends first.
 */
function prepareStreams(http2Server: Http2Server): void {
  http2Server.prependListener(
    "stream",
    (stream: ServerHttp2Stream, headers: Record<string, unknown>, _flags: number, rawHeaders: string[]) => {
      for (const name of KEY_HEADERS) {
        const values = valuesOf(rawHeaders, name);
        if (values.length > 1) headers[name] = values;
      }
      const requestId = saneRequestId(headers[REQUEST_ID_HEADER]) ?? randomUUID();
      headers[REQUEST_ID_HEADER] = requestId;
      const respond = stream.respond.bind(stream);
      stream.respond = (sent, options) => respond({ [REQUEST_ID_HEADER]: requestId, ...sent }, options);
    },
  );
}

/** Every value of a header in Node's raw list (name, value, name, value, …), names in any case. */
function valuesOf(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i]?.toLowerCase() === name) values.push(rawHeaders[i + 1] ?? "");
  return values;
}

export async function startGrpcServer(
  handlers: UntypedServiceImplementation,
  health: HealthReporter,
  address: string,
  options: GrpcServerOptions = {},
): Promise<GrpcServer> {
  const server = new Server(serverOptionsOf(options));
  const services: ServiceBinding[] = [
    { name: BILLING_SERVICE_NAME, definition: BillingServiceService, handlers },
    ...(options.services ?? []),
  ];
  for (const service of services) {
    server.addService(withSerializedResponses(withCheckedRequests(service.definition, service.name)), service.handlers);
  }
  health.addTo(server);
  addReflection(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, options.credentials ?? ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  const http2Servers = http2ServersOf(server);
  for (const http2Server of http2Servers) prepareStreams(http2Server);
  const limits = options.connections;
  if (limits) for (const http2Server of http2Servers) limitConnections(http2Server, limits);
  return {
    server,
    port,
    shutdown: (graceMs) =>
      new Promise<number>((resolve) => {
        const grace = cutAfterGrace(options.inFlight, graceMs, () => {
          server.forceShutdown();
          resolve(grace.answered());
        });
        server.tryShutdown(() => {
          grace.cancel();
          resolve(grace.answered());
        });
      }),
  };
}
