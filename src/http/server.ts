import type { RequestListener, Server } from "node:http";
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from "node:https";
import swagger from "@fastify/swagger";
import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest, type FastifySchemaCompiler } from "fastify";
import type { TSchema } from "typebox";
import { BillingError, toBillingError } from "../errors/billing-error.js";
import { apiKeyOf, checkScope } from "./auth.js";
import { callSignal } from "./call-signal.js";
import { errorBody, retryAfterSeconds } from "./error-body.js";
import type { HttpApp, HttpDependencies } from "./http-app.js";
import { REQUEST_ID_HEADER, requestIdOf } from "./request-id.js";
import { registerBillingRoutes } from "./routes/billing.js";
import { registerReversalRoutes } from "./routes/reversals.js";
import { registerCustomerRoutes } from "./routes/customers.js";
import { registerEntitlementRoutes } from "./routes/entitlements.js";
import { registerServiceRoutes } from "./routes/service.js";
import { registerSlotRoutes } from "./routes/slots.js";
import { schemaIssueToError, type SchemaIssue } from "./schema-errors.js";

export interface HttpServer {
  readonly port: number;
  /** `http://host:port` (`https://` with TLS), with the bound port. */
  readonly url: string;
  /** Stops accepting requests, lets in-flight ones finish for up to `graceMs`, then cuts them. */
  close(graceMs: number): Promise<void>;
}

const INTEGER_TEXT = /^[+-]?\d+$/;

/**
 * TypeBox's compiler, which converts query strings to the schema's types first; that conversion
 * would read `limit=1.5` as 1, so an integer parameter must be written as one.
 */
const validatorCompiler: FastifySchemaCompiler<TSchema> = (route) => {
  const check = TypeBoxValidatorCompiler(route);
  if (route.httpPart !== "querystring") return check;
  const { properties = {} } = route.schema as { properties?: Record<string, { type?: unknown }> };
  const integers = Object.keys(properties).filter((key) => properties[key]?.type === "integer");
  return (value: unknown) => {
    const query = (value ?? {}) as Record<string, unknown>;
    for (const key of integers) {
      const raw = query[key];
      if (typeof raw === "string" && !INTEGER_TEXT.test(raw)) {
        return {
          error: [{ keyword: "type", instancePath: `/${key}`, schemaPath: "#", params: { type: "integer" }, message: "must be integer" }],
        };
      }
    }
    return check(value);
  };
};

/** The part of the request a schema failure is about. */
function partOf(request: FastifyRequest, context: string | undefined): unknown {
  if (context === "querystring") return request.query;
  if (context === "params") return request.params;
  return request.body;
}

/** Any failure as a catalogue error: schema failures per field, body parsing as invalid_argument. */
function toCatalogueError(thrown: unknown, request: FastifyRequest): BillingError {
  if (thrown instanceof BillingError) return thrown;
  const fastifyError = thrown as Partial<FastifyError>;
  if (Array.isArray(fastifyError.validation)) {
    const issues = fastifyError.validation as readonly SchemaIssue[];
    return schemaIssueToError(issues[0], partOf(request, fastifyError.validationContext), request.routeOptions.config.fieldCodes);
  }
  // fastify's own 4xx: unparseable JSON, another content type, an empty or oversized body.
  const status = fastifyError.statusCode ?? 500;
  if (typeof fastifyError.code === "string" && fastifyError.code.startsWith("FST_") && status >= 400 && status < 500) {
    return new BillingError("invalid_argument", "The request body must be a JSON object.", { field: "body" });
  }
  return toBillingError(thrown);
}

function sendError(error: BillingError, request: FastifyRequest, reply: FastifyReply, deps: HttpDependencies) {
  request.errorCode = error.code;
  if (error.spec.grpcStatus === "INTERNAL") {
    deps.log.error({ requestId: request.id, err: error.cause ?? error }, "call failed with an unexpected error");
  }
  const retryAfter = retryAfterSeconds(error);
  if (retryAfter !== null) void reply.header("retry-after", String(retryAfter));
  return reply.status(error.spec.httpStatus).send(errorBody(error, request.id));
}

/**
 * The request's context (with its signal), request id, key, scope and rate limit, then one log
 * line and metrics per request.
 */
function addHooks(app: HttpApp, deps: HttpDependencies): void {
  app.decorateRequest("caller", null);
  app.decorateRequest("errorCode", null);
  app.decorateRequest("billingContext", null);
  app.addHook("onRequest", async (request, reply) => {
    request.billingContext = { ...deps.context, signal: callSignal(reply.raw) };
    void reply.header(REQUEST_ID_HEADER, request.id);
    if (request.is404) return;
    const access = request.routeOptions.config.access ?? "write";
    if (access === "public") return;
    const caller = await deps.authenticate(apiKeyOf(request));
    checkScope(caller, access);
    await deps.rateLimit(caller);
    request.caller = { ...caller, requestId: request.id };
  });
  app.addHook("onResponse", async (request, reply) => {
    const route = request.is404 ? "unknown" : `${request.method} ${request.routeOptions.url ?? ""}`;
    const code = request.errorCode ?? "ok";
    const seconds = reply.elapsedTime / 1000;
    deps.metrics?.httpCalls.inc({ route, code });
    deps.metrics?.httpLatency.observe({ route }, seconds);
    deps.log.info(
      { requestId: request.id, route, code, status: reply.statusCode, durationMs: Math.round(reply.elapsedTime * 1e3) / 1e3 },
      "http call",
    );
  });
}

/**
 * The fastify application with every route, not yet listening (tests may inject requests); over
 * HTTPS with `tls`. The routes see the same request and reply objects either way, so the app
 * keeps its http.Server type.
 */
export async function buildHttpApp(deps: HttpDependencies, tls: HttpsServerOptions | null = null): Promise<HttpApp> {
  const app = Fastify({
    logger: false,
    genReqId: requestIdOf,
    requestIdHeader: false,
    ...(tls ? { serverFactory: (handler: RequestListener) => createHttpsServer(tls, handler) as unknown as Server } : {}),
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // JSON only: a text/plain body is refused as not JSON rather than validated as a string.
  app.removeContentTypeParser("text/plain");
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "velobase-billing HTTP API",
        version: "1.0.0",
        description:
          "Velobase-compatible JSON API over the same operations as the gRPC BillingService, SlotService and EntitlementService.",
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: "http", scheme: "bearer", description: "Authorization: Bearer <API key>" },
          apiKeyHeader: { type: "apiKey", in: "header", name: "x-api-key" },
        },
      },
      security: [{ bearerAuth: [] }, { apiKeyHeader: [] }],
    },
  });
  addHooks(app, deps);
  app.setErrorHandler((thrown, request, reply) => sendError(toCatalogueError(thrown, request), request, reply, deps));
  app.setNotFoundHandler((request, reply) => sendError(new BillingError("not_found"), request, reply, deps));
  registerServiceRoutes(app, deps);
  registerCustomerRoutes(app);
  registerBillingRoutes(app);
  registerReversalRoutes(app);
  registerSlotRoutes(app);
  registerEntitlementRoutes(app);
  if (deps.mount) await app.register(deps.mount);
  await app.ready();
  return app;
}

/** The HTTP API on host:port (0 picks a free port), over HTTPS with `tls`. */
export async function startHttpServer(
  deps: HttpDependencies,
  address: { host: string; port: number },
  tls: HttpsServerOptions | null = null,
): Promise<HttpServer> {
  const app = await buildHttpApp(deps, tls);
  await app.listen({ host: address.host, port: address.port });
  const bound = app.server.address();
  const port = typeof bound === "object" && bound ? bound.port : address.port;
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  return {
    port,
    url: `${tls ? "https" : "http"}://${host}:${port}`,
    async close(graceMs) {
      const cut = setTimeout(() => app.server.closeAllConnections(), graceMs);
      cut.unref();
      await app.close();
      clearTimeout(cut);
    },
  };
}
