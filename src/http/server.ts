import { randomUUID } from "node:crypto";
import type { RequestListener, Server } from "node:http";
import type { Duplex } from "node:stream";
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from "node:https";
import swagger from "@fastify/swagger";
import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest, type FastifySchemaCompiler } from "fastify";
import type { TSchema } from "typebox";
import { BillingError, CallNotRun, toBillingError } from "../errors/billing-error.js";
import { apiKeyOf, checkScope } from "./auth.js";
import { readyErrorAnswer } from "../errors/client-went-away.js";
import { callSignal } from "./call-signal.js";
import { errorBody } from "./error-body.js";
import type { HttpApp, HttpDependencies, HttpStopping } from "./http-app.js";
import { REQUEST_ID_HEADER, requestIdOf } from "./request-id.js";
import { registerBillingRoutes } from "./routes/billing.js";
import { registerReversalRoutes } from "./routes/reversals.js";
import { registerCustomerRoutes } from "./routes/customers.js";
import { registerEntitlementRoutes } from "./routes/entitlements.js";
import { registerEventRoutes } from "./routes/events.js";
import { registerServiceRoutes } from "./routes/service.js";
import { registerSlotRoutes } from "./routes/slots.js";
import { notAJsonObject, notAnIntegerIssue, schemaIssueToError, type SchemaIssue } from "./schema-errors.js";
import { parseJsonBody, RoundedToInteger } from "./json-body.js";
import { ID_LENGTH_MAX } from "../domain/limits.js";
import { callerOnLine } from "../domain/caller.js";
import { unavailableCause } from "../logger.js";
import { cutAfterGrace } from "../operations/in-flight-calls.js";
import { limitConnections } from "../tenancy/connection-limits.js";

export interface HttpServer {
  readonly port: number;
  /** `http://host:port` (`https://` with TLS), with the bound port. */
  readonly url: string;
  /** From now on every answer closes its connection (`Connection: close`): a shutdown has begun. */
  drain(): void;
  /**
   * Stops accepting requests and lets in-flight ones finish for up to `graceMs`; then answers those
   * still open service_unavailable (`inFlight`) and cuts the connections. Resolves to how many it
   * answered so.
   */
  close(graceMs: number): Promise<number>;
}

const INTEGER_TEXT = /^[+-]?\d+$/;

/** A path parameter is an id, which a client may percent-encode whole (`:` → `%3A`): 3 bytes a character. */
const PATH_PARAM_LENGTH_MAX = 3 * ID_LENGTH_MAX;
/** Bodies up to 1 MiB (fastify's default); a larger one is refused before it is read whole. */
const BODY_BYTES_MAX = 1_048_576;

/**
 * Every query parameter is optional, and one sent empty (`?customer_id=`, `?limit=`) is absent, as
 * an unset proto3 field is over gRPC: a filter left empty filters nothing, rather than refusing a
 * client that builds its URL from unset values (a "required" code for a filter nobody requires).
 */
const withoutEmptyValues = (query: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(query).filter(([, raw]) => raw !== ""));

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
    const query = withoutEmptyValues((value ?? {}) as Record<string, unknown>);
    for (const key of integers) {
      const raw = query[key];
      if (typeof raw === "string" && !INTEGER_TEXT.test(raw)) {
        return {
          error: [{ keyword: "type", instancePath: `/${key}`, schemaPath: "#", params: { type: "integer" }, message: "must be integer" }],
        };
      }
    }
    return check(query);
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
  return frameworkError(fastifyError) ?? toBillingError(thrown);
}

/** fastify's own 4xx as catalogue errors: a bad URL, an id too long, an oversized or non-JSON body. */
function frameworkError(error: Partial<FastifyError>): BillingError | null {
  const status = error.statusCode ?? 500;
  if (typeof error.code !== "string" || !error.code.startsWith("FST_") || status < 400 || status >= 500) return null;
  switch (error.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new BillingError("invalid_argument", `The request body is too large: at most ${BODY_BYTES_MAX} bytes.`, {
        field: "body",
        limit: BODY_BYTES_MAX,
      });
    case "FST_ERR_BAD_URL":
      return new BillingError("invalid_argument", "The request path is not valid percent-encoded UTF-8.", { field: "path" });
    case "FST_ERR_MAX_PARAM_LENGTH":
      return new BillingError("invalid_argument", `A path parameter is too long: ids are 1-${ID_LENGTH_MAX} characters.`, {
        field: "path",
      });
    default:
      return notAJsonObject();
  }
}

/**
 * Requests Node's HTTP parser refuses before fastify sees them (a NUL or CR in a header, headers
 * over the size limit, a malformed request line) get the API's error body and a request id too,
 * and are logged and counted as any answer (route "unknown").
 */
const answerClientErrorFor = (deps: HttpDependencies, openRequests: OpenRequests) => (error: Error & { code?: string }, socket: Duplex) =>
  answerClientError(error, socket, deps, openRequests.get(socket)?.at(-1));

interface OpenRequest {
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
}

/**
 * The requests open on each connection, in arrival order: a second one is pipelined behind the
 * first, and the last is the one arriving (a body the request timeout may cut).
 */
type OpenRequests = WeakMap<object, readonly OpenRequest[]>;

/** Counts the request open on its connection until its reply closes; answers how many were open before it. */
function trackOpen(openRequests: OpenRequests, request: FastifyRequest, reply: FastifyReply): number {
  const socket = request.raw.socket;
  const before = openRequests.get(socket) ?? [];
  const entry = { request, reply };
  openRequests.set(socket, [...before, entry]);
  reply.raw.once("close", () =>
    openRequests.set(
      socket,
      (openRequests.get(socket) ?? []).filter((open) => open !== entry),
    ),
  );
  return before.length;
}

function answerClientError(
  error: Error & { code?: string },
  socket: Duplex & { bytesRead?: number },
  deps: HttpDependencies,
  receiving: OpenRequest | undefined,
): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  // No request to answer: a client that closed its side in the middle of its request (when it had
  // begun one, that request has its own line: "the client closed the connection before its request
  // arrived"), or a connection that sent nothing before the request timeout (a browser's
  // preconnect, a port probe).
  if (error.code === "HPE_INVALID_EOF_STATE" || (error.code === "ERR_HTTP_REQUEST_TIMEOUT" && socket.bytesRead === 0)) {
    socket.destroy();
    return;
  }
  const message =
    error.code === "HPE_HEADER_OVERFLOW"
      ? "The request headers are too large."
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? "The request did not arrive in time."
        : "The request is not valid HTTP/1.1 (a header holds a forbidden character, or the request line is malformed).";
  const refusal = new BillingError("invalid_argument", message, { field: "request" });
  // A request whose body the timeout cut is answered and logged under its own id and route.
  const cut = error.code === "ERR_HTTP_REQUEST_TIMEOUT" && receiving !== undefined && !receiving.request.raw.complete ? receiving : null;
  if (cut) cut.request.timedOut = true;
  const requestId = cut?.request.id ?? randomUUID();
  const body = JSON.stringify(errorBody(refusal, requestId));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${refusal.spec.httpStatus} Bad Request\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `${REQUEST_ID_HEADER}: ${requestId}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
  const route = cut ? routeOf(cut.request) : UNKNOWN_ROUTE;
  const seconds = (cut?.reply.elapsedTime ?? 0) / 1000;
  countAndLog(deps, { requestId, route, code: refusal.code, status: refusal.spec.httpStatus, seconds });
}

function sendError(error: BillingError, request: FastifyRequest, reply: FastifyReply, deps: HttpDependencies) {
  if (!readyErrorAnswer(error, unavailableCause(error) ?? null, request, reply, deps.log)) return reply;
  return reply.status(error.spec.httpStatus).send(errorBody(error, request.id));
}

/**
 * The request's context (with its signal), request id, key, scope and rate limit, then one log
 * line and metrics per request.
 */
function addHooks(app: HttpApp, deps: HttpDependencies, stopping: HttpStopping, openRequests: OpenRequests): void {
  // Connections an answer during the drain closes (Connection: close); a request pipelined behind
  // another (openRequests) would have its answer follow one that closes.
  const closingSockets = new WeakSet<object>();
  const pipelinedOrClosing = (request: FastifyRequest, reply: FastifyReply): boolean =>
    trackOpen(openRequests, request, reply) > 0 || closingSockets.has(request.raw.socket);
  app.decorateRequest("caller", null);
  app.decorateRequest("errorCode", null);
  app.decorateRequest("errorCause", null);
  app.decorateRequest("timedOut", false);
  app.decorateRequest("billingContext", null);
  app.addHook("onRequest", async (request, reply) => {
    // Aborted when the client leaves, or when a shutdown answered the call already (work not begun is not begun then).
    const watched = callSignal(reply.raw);
    request.billingContext = { ...deps.context, signal: watched.signal };
    void reply.header(REQUEST_ID_HEADER, request.id);
    // Answered here, not thrown: a route's own error handler (the console's) would run before its
    // plugins (cookies) had seen the request. A request pipelined behind an answer that closes its
    // connection is not run either: its answer could not be sent.
    const pipelined = pipelinedOrClosing(request, reply);
    if (stopping.closing || (stopping.draining && pipelined)) {
      return sendError(
        new BillingError("service_unavailable", "This instance is shutting down; send the call again."),
        request,
        reply,
        deps,
      );
    }
    const forget = deps.inFlight?.add((error) => {
      const answered = answerNow(error, request, reply, deps);
      watched.abort(error);
      return answered;
    });
    if (forget) reply.raw.once("close", forget);
    if (request.is404) return;
    const access = request.routeOptions.config.access ?? "write";
    if (access === "public") return;
    // A client that left while its key or budget was looked up is not run. Its request may have
    // arrived whole, so Node tells its body nothing (no `aborted`) and the body would never end.
    // (Aborted after a shutdown answered it instead: that answer stands.)
    const gone = () => watched.signal.aborted && !reply.sent;
    const caller = await deps.authenticate(apiKeyOf(request), () => request.ip);
    if (gone()) throw new CallNotRun();
    checkScope(caller, access);
    await deps.rateLimit(caller);
    if (gone()) throw new CallNotRun();
    request.caller = { ...caller, requestId: request.id };
    request.billingContext = { ...request.billingContext, tenant: caller.projectId.toString() };
  });
  app.addHook("onResponse", async (request, reply) => logCall(deps, request, reply, false));
  // A client that left while its call ran never sees an answer, and Fastify then never calls
  // onResponse: the call (a deposit that committed, say) is logged here, once its outcome is known.
  app.addHook("onSend", async (request, reply, payload) => {
    if (reply.raw.destroyed && !reply.raw.writableEnded) logCall(deps, request, reply, true);
    // Answered before its request arrived whole (a refusal of its key, its scope, its rate): the
    // connection closes after the answer. Kept open, it waited for the rest of the body, and a body
    // that never came drew a second, unasked-for 400 on the same connection at the request timeout.
    if (!request.raw.complete) void reply.header("connection", "close");
    if (stopping.draining) {
      void reply.header("connection", "close");
      closingSockets.add(request.raw.socket);
    }
    return payload;
  });
}

/** A request still open when a shutdown's grace ran out: answered now, unless its answer has begun or its client left. */
function answerNow(error: BillingError, request: FastifyRequest, reply: FastifyReply, deps: HttpDependencies): boolean {
  if (reply.sent || reply.raw.headersSent || reply.raw.destroyed) return false;
  void sendError(error, request, reply, deps);
  return true;
}

/** The status proxies (nginx) log for a request whose client closed it before the answer. */
const CLIENT_CLOSED_REQUEST = 499;

/** The route a request's line and metrics name; none for an unknown path or one refused before routing (a bad URL, an overlong parameter). */
function routeOf(request: FastifyRequest): string {
  const url = request.is404 ? undefined : request.routeOptions.url;
  return url === undefined ? UNKNOWN_ROUTE : `${request.method} ${url}`;
}

/**
 * One log line and the metrics of a call; `clientGone`: its client left before the answer. A call
 * not run because its client had left (CallNotRun) counts as `cancelled`, status 499 as proxies
 * log it, not as a 503 of ours that would set off an availability alert whenever clients give up;
 * a failure of ours whose client gave up meanwhile is still that failure.
 */
function logCall(deps: HttpDependencies, request: FastifyRequest, reply: FastifyReply, clientGone: boolean): void {
  const code = request.errorCode ?? "ok";
  countAndLog(deps, {
    requestId: request.id,
    route: routeOf(request),
    code,
    status: code === "cancelled" ? CLIENT_CLOSED_REQUEST : reply.statusCode,
    seconds: reply.elapsedTime / 1000,
    cause: request.errorCause ?? undefined,
    clientGone: clientGone || undefined,
    ...callerOnLine(request.caller),
  });
}

const UNKNOWN_ROUTE = "unknown";

interface AnsweredCall {
  readonly requestId: string;
  readonly route: string;
  readonly code: string;
  readonly status: number;
  readonly seconds: number;
  readonly cause?: unknown;
  readonly clientGone?: true | undefined;
  readonly keyPrefix?: string;
  readonly projectId?: string;
}

/** The metrics and the one "http call" line of an answered request. */
function countAndLog(deps: HttpDependencies, { seconds, ...call }: AnsweredCall): void {
  deps.metrics?.httpCalls.inc({ route: call.route, code: call.code });
  deps.metrics?.httpLatency.observe({ route: call.route }, seconds);
  deps.log.info({ ...call, durationMs: Math.round(seconds * 1e6) / 1e3 }, "http call");
}

/**
 * The fastify application with every route, not yet listening (tests may inject requests); over
 * HTTPS with `tls`. The routes see the same request and reply objects either way, so the app
 * keeps its http.Server type.
 */
export async function buildHttpApp(
  deps: HttpDependencies,
  tls: HttpsServerOptions | null = null,
  stopping: HttpStopping = { draining: false, closing: false },
): Promise<HttpApp> {
  // Node checks request timeouts every connectionsCheckingInterval (30 s by default), and only
  // with the values given when the server is made (setting requestTimeout later cut no body).
  const timeouts = { requestTimeout: deps.requestTimeoutMs, connectionsCheckingInterval: 1_000 };
  const openRequests: OpenRequests = new WeakMap();
  const app = Fastify({
    logger: false,
    genReqId: requestIdOf,
    requestIdHeader: false,
    routerOptions: { maxParamLength: PATH_PARAM_LENGTH_MAX },
    bodyLimit: BODY_BYTES_MAX,
    clientErrorHandler: answerClientErrorFor(deps, openRequests),
    requestTimeout: timeouts.requestTimeout,
    http: timeouts,
    // Fastify's own 503 while closing has none of the catalogue's body, Retry-After or request id:
    // the onRequest hook answers those requests instead.
    return503OnClosing: false,
    // request.ip: the client behind a trusted proxy (TRUSTED_PROXIES), for the unknown-key throttle.
    trustProxy: deps.proxyTrust ?? false,
    // A bad URL or an overlong path parameter, found before any hook runs.
    // Fastify calls no onResponse hook for these: the line and the count are made here.
    frameworkErrors: (error, request, reply) => {
      void reply.header(REQUEST_ID_HEADER, request.id);
      void sendError(toCatalogueError(error, request), request, reply, deps);
      reply.raw.once("finish", () => logCall(deps, request, reply, false));
    },
    ...(tls
      ? { serverFactory: (handler: RequestListener) => createHttpsServer({ ...tls, ...timeouts }, handler) as unknown as Server }
      : {}),
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // JSON only: a text/plain body is refused as not JSON rather than validated as a string.
  app.removeContentTypeParser("text/plain");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, raw, done) => {
    try {
      // No bytes is no body (many clients label every request JSON): a route that takes none, a
      // DELETE say, serves it; one that needs one refuses it by its schema, as any non-object.
      done(null, (raw as Buffer).length === 0 ? undefined : parseJsonBody(raw as Buffer));
    } catch (error) {
      if (!(error instanceof RoundedToInteger)) return done(error as Error, undefined);
      done(schemaIssueToError(notAnIntegerIssue(error.field), error.body, request.routeOptions.config.fieldCodes), undefined);
    }
  });
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
  addHooks(app, deps, stopping, openRequests);
  app.setErrorHandler((thrown, request, reply) => sendError(toCatalogueError(thrown, request), request, reply, deps));
  app.setNotFoundHandler((request, reply) => sendError(new BillingError("not_found"), request, reply, deps));
  registerServiceRoutes(app, deps);
  registerCustomerRoutes(app);
  registerBillingRoutes(app);
  registerReversalRoutes(app);
  registerSlotRoutes(app);
  registerEntitlementRoutes(app);
  registerEventRoutes(app);
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
  const stopping: HttpStopping = { draining: false, closing: false };
  const app = await buildHttpApp(deps, tls, stopping);
  if (deps.connections) limitConnections(app.server, deps.connections);
  await app.listen({ host: address.host, port: address.port });
  const bound = app.server.address();
  const port = typeof bound === "object" && bound ? bound.port : address.port;
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  return {
    port,
    url: `${tls ? "https" : "http"}://${host}:${port}`,
    drain() {
      stopping.draining = true;
    },
    async close(graceMs) {
      stopping.draining = true;
      stopping.closing = true;
      const grace = cutAfterGrace(deps.inFlight, graceMs, () => app.server.closeAllConnections());
      await app.close();
      grace.cancel();
      return grace.answered();
    },
  };
}
