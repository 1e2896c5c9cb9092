import { createRequire } from "node:module";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import cookie from "@fastify/cookie";
import csrf from "@fastify/csrf-protection";
import formbody from "@fastify/formbody";
import fastifyStatic from "@fastify/static";
import view from "@fastify/view";
import { Eta } from "eta";
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { BillingError } from "../errors/billing-error.js";
import { toBillingError } from "../errors/billing-error.js";
import { readyErrorAnswer } from "../errors/client-went-away.js";
import { unavailableCause } from "../logger.js";
import type { AuthenticatedCaller } from "../tenancy/authenticator.js";
import { type ConsoleScope, consoleCallerOf, renderPage } from "./console-scope.js";
import type { ConsoleDependencies } from "./console-dependencies.js";
import { registerActionRoutes } from "./action-routes.js";
import { registerPageRoutes } from "./page-routes.js";
import { csrfBindingOf, csrfKeyOf } from "./csrf-binding.js";
import { type DepositForm, depositFormOf } from "./action-forms.js";
import { idOrNull } from "./page-queries.js";
import { setSecurityHeaders } from "./security-headers.js";
import { CONSOLE_PATH, clearSessionCookie, reachedOverHttps, SESSION_COOKIE, setSessionCookie, sessionIdOf } from "./session-cookie.js";

const VIEWS_DIR = fileURLToPath(new URL("./views", import.meta.url));
const OWN_ASSETS_DIR = fileURLToPath(new URL("./assets", import.meta.url));
const requireFrom = createRequire(import.meta.url);

/** The files under /console/assets/: the console's own and two libraries, straight from node_modules. */
const ASSETS: ReadonlyMap<string, { dir: string; file: string }> = new Map([
  ["console.css", { dir: OWN_ASSETS_DIR, file: "console.css" }],
  ["console.js", { dir: OWN_ASSETS_DIR, file: "console.js" }],
  ["htmx.min.js", { dir: dirname(requireFrom.resolve("htmx.org/dist/htmx.min.js")), file: "htmx.min.js" }],
  ["uPlot.iife.min.js", { dir: dirname(requireFrom.resolve("uplot/dist/uPlot.iife.min.js")), file: "uPlot.iife.min.js" }],
  ["uPlot.min.css", { dir: dirname(requireFrom.resolve("uplot/dist/uPlot.min.css")), file: "uPlot.min.css" }],
]);
/** How long a browser keeps an asset (@fastify/static sets Cache-Control from it, over any header set before). */
const ASSET_MAX_AGE_MS = 3_600_000;

const isHtmx = (request: FastifyRequest): boolean => request.headers["hx-request"] === "true";

/** The sign-in page, saying whether a session ended, and leading back to `next`. */
function signInAddress(ended: boolean, next: string | null): string {
  const query = new URLSearchParams({ ...(ended ? { ended: "1" } : {}), ...(next ? { next } : {}) }).toString();
  return `${CONSOLE_PATH}/sign-in${query ? `?${query}` : ""}`;
}

/** The page an htmx request came from (htmx sends its address), as a page to return to. */
function pageOfHtmx(request: FastifyRequest): string | null {
  const current = request.headers["hx-current-url"];
  if (typeof current !== "string") return null;
  try {
    const url = new URL(current);
    return pageToReturnTo(`${url.pathname}${url.search}`);
  } catch {
    return null;
  }
}

/** The longest page address a sign-in leads back to; a longer one leads to the customers. */
const RETURN_PATH_CHARS_MAX = 2_048;

/**
 * A console page to lead back to after signing in: a path of this origin under /console/ (never
 * another site's address, `//host`, a backslash or a `..` step), in printable ASCII (a page's own
 * address is percent-encoded; anything else could not stand in a Location header), else null.
 */
export function pageToReturnTo(raw: unknown): string | null {
  if (typeof raw !== "string" || raw.length > RETURN_PATH_CHARS_MAX || !/^[\x21-\x7e]+$/.test(raw)) return null;
  if (!raw.startsWith(`${CONSOLE_PATH}/`) || raw.startsWith(`${CONSOLE_PATH}/sign-`)) return null;
  if (/\\|\/\/|(^|\/)\.\.?(\/|$|\?)|%2e/i.test(raw)) return null;
  return raw;
}

/** Fastify's own 4xx (a body that is no form, or too large): the request is refused, nothing failed. */
function frameworkRefusal(error: Partial<FastifyError>): BillingError | null {
  const status = error.statusCode ?? 500;
  if (typeof error.code !== "string" || !error.code.startsWith("FST_") || status < 400 || status >= 500) return null;
  const message =
    error.code === "FST_ERR_CTP_BODY_TOO_LARGE"
      ? "The form is too large."
      : "The console takes its own forms only (application/x-www-form-urlencoded).";
  return new BillingError("invalid_argument", message, { field: "body" });
}

/** The failure as a page: catalogue errors with their message and status, anything else as server_error. */
async function renderError(thrown: unknown, request: FastifyRequest, reply: FastifyReply, deps: ConsoleDependencies) {
  const fastifyError = thrown as Partial<FastifyError>;
  let error: BillingError;
  if (thrown instanceof BillingError) error = thrown;
  else if (typeof fastifyError.code === "string" && fastifyError.code.startsWith("FST_CSRF")) {
    // A form without its token (or from another site): refused before anything runs.
    error = new BillingError("permission_denied", "The form has expired or did not come from this console: reload the page and try again.");
  } else error = frameworkRefusal(fastifyError) ?? toBillingError(thrown);
  if (!readyErrorAnswer(error, unavailableCause(error) ?? null, request, reply, deps.log)) return reply;
  if (isHtmx(request)) return renderFailedPart(request, reply, error);
  const backTo = customerOfPage(request);
  const depositForm = refusedDepositForm(request, error);
  return renderPage(
    request,
    reply,
    "error",
    "Error",
    { message: error.message, code: error.code, backTo, depositForm },
    error.spec.httpStatus,
  );
}

/** The parts of a page htmx replaces (their element ids): a failed update is shown in their place. */
const HTMX_PARTS: ReadonlySet<string> = new Set(["chart", "ledger"]);

/**
 * A failed htmx update (the chart's range, the ledger's filters or next page): its error in place
 * of the part it was to replace (console.js has htmx swap it), with a link back to the whole page,
 * so the click does not just do nothing. Same status and Retry-After as the page would have.
 */
function renderFailedPart(request: FastifyRequest, reply: FastifyReply, error: BillingError) {
  const target = request.headers["hx-target"];
  const part = typeof target === "string" && HTMX_PARTS.has(target) ? target : null;
  const reload = pageOfHtmx(request) ?? `${CONSOLE_PATH}/customers`;
  return renderPage(
    request,
    reply,
    "error-part",
    "Error",
    { part, message: error.message, code: error.code, reload },
    error.spec.httpStatus,
  );
}

const DEPOSIT_ROUTES: ReadonlySet<string | undefined> = new Set([
  `${CONSOLE_PATH}/customers/:id/deposit/confirm`,
  `${CONSOLE_PATH}/customers/:id/deposit`,
]);

/**
 * A deposit form the service refused (an amount, a date, a reason it does not take), to show
 * again as typed: only a 400, which the form's own values caused. Not a 403: a form without its
 * CSRF token may come from another site, and its values are not shown back; nor a 409: its key
 * made a deposit already.
 */
function refusedDepositForm(request: FastifyRequest, error: BillingError): DepositForm | null {
  if (!DEPOSIT_ROUTES.has(request.routeOptions.url) || error.spec.httpStatus !== 400) return null;
  const body = request.body;
  return body !== null && typeof body === "object" ? depositFormOf(body as Readonly<Record<string, unknown>>) : null;
}

/** The customer whose page or form the failed request came from (a deposit refused, say), if any. */
function customerOfPage(request: FastifyRequest): string | null {
  if (!request.routeOptions.url?.startsWith(`${CONSOLE_PATH}/customers/:id`)) return null;
  const { id } = request.params as { id?: unknown };
  return typeof id === "string" ? idOrNull(id) : null;
}

/**
 * A request without a live session, back to the sign-in page (a GET by redirect, else 401). A GET
 * names its page (`next`), where the sign-in then leads, and says when a session has ended.
 */
function toSignIn(request: FastifyRequest, reply: FastifyReply) {
  // Only a cookie that came is cleared: a request without one (a link from a mail or a ticket
  // under an older SameSite=Strict cookie) must not end a session the browser still holds.
  const ended = request.cookies[SESSION_COOKIE] !== undefined;
  if (ended) clearSessionCookie(reply);
  if (request.method === "GET" && !isHtmx(request)) return reply.redirect(signInAddress(ended, pageToReturnTo(request.url)), 303);
  request.errorCode = "missing_api_key"; // the console's credential is its session
  if (isHtmx(request))
    return reply
      .header("hx-redirect", signInAddress(ended, pageOfHtmx(request)))
      .status(401)
      .send("");
  const message = ended ? "Your session has ended: sign in again." : "Sign in to go on.";
  return renderPage(request, reply, "sign-in", "Sign in", { message }, 401);
}

/**
 * Resolves the session cookie to its key; without a live session, back to the sign-in page.
 * `charge`: the request takes a token of the key's rate limit (every route but sign-out, which a
 * rate-limited operator must still be able to use).
 */
function signedIn(deps: ConsoleDependencies, { charge }: { charge: boolean }) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const sessionId = sessionIdOf(request);
    const caller = sessionId === null ? null : await deps.sessions.resolve(sessionId);
    if (caller === null) return toSignIn(request, reply);
    // Signed in before the charge: a page that says the key is out of budget still offers sign-out.
    request.consoleCaller = caller;
    if (charge) await deps.rateLimit(caller);
  };
}

/**
 * Who signed in or out, for the audit trail: the key by its id and public prefix (never the key),
 * its project and scope, and the client's address (past TRUSTED_PROXIES).
 */
const sessionAudit = (request: FastifyRequest, caller: AuthenticatedCaller) => ({
  requestId: request.id,
  client: request.ip,
  projectId: caller.projectId.toString(),
  ...keyFieldsOf(caller),
  scope: caller.scope,
});

/** A key in an audit line: its id and public prefix, never the key. */
const keyFieldsOf = (caller: AuthenticatedCaller) => ({ apiKeyId: caller.apiKeyId.toString(), keyPrefix: caller.keyPrefix });

/**
 * A refused or throttled sign-in's audit line: a guessing run is in the trail whole, with its
 * address. `valid`: the key, when it was valid and refused for its own budget.
 */
function auditRefusal(deps: ConsoleDependencies, request: FastifyRequest, error: unknown, valid: AuthenticatedCaller | null): void {
  if (!(error instanceof BillingError)) return;
  if (error.spec.type !== "auth_error" && error.code !== "rate_limit_exceeded") return;
  const key = valid && keyFieldsOf(valid);
  deps.log.warn({ requestId: request.id, client: request.ip, code: error.code, ...key }, "console sign-in refused");
}

function registerSessionRoutes(scope: ConsoleScope): void {
  const { app, deps } = scope;
  app.get("/", { config: { access: "public" } }, async (request, reply) => {
    const sessionId = sessionIdOf(request);
    const caller = sessionId === null ? null : await deps.sessions.resolve(sessionId);
    return reply.redirect(`${CONSOLE_PATH}/${caller === null ? "sign-in" : "customers"}`, 303);
  });
  app.get<{ Querystring: Record<string, unknown> }>("/sign-in", { config: { access: "public" } }, (request, reply) => {
    const { ended, next } = request.query;
    const message = ended === "1" ? "Your session has ended: sign in again." : undefined;
    return renderPage(request, reply, "sign-in", "Sign in", { message, next: pageToReturnTo(next) });
  });
  app.post<{ Body: { api_key?: unknown; next?: unknown } | undefined }>(
    "/sign-in",
    { config: { access: "public" }, preHandler: scope.csrf },
    async (request, reply) => {
      // Anything but one text (the field twice, a JSON number) is no key: the API's missing_api_key.
      const presented = request.body?.api_key;
      let valid: AuthenticatedCaller | null = null;
      try {
        const key = typeof presented === "string" ? presented.trim() : "";
        const admit = (found: AuthenticatedCaller) => {
          valid = found;
          return deps.rateLimit(found);
        };
        const { sessionId, caller } = await deps.sessions.signIn(key, () => request.ip, admit);
        // The browser's previous session ends here, not at its TTL.
        const previous = sessionIdOf(request);
        if (previous !== null) await deps.sessions.signOut(previous);
        setSessionCookie(reply, sessionId, deps.sessionTtlMs);
        deps.log.info(sessionAudit(request, caller), "console sign-in");
        return reply.redirect(pageToReturnTo(request.body?.next) ?? `${CONSOLE_PATH}/customers`, 303);
      } catch (error) {
        auditRefusal(deps, request, error, valid);
        if (!(error instanceof BillingError) || error.spec.type !== "auth_error") throw error;
        request.errorCode = error.code;
        // The API's own words: nothing says whether a project or a key exists.
        const next = pageToReturnTo(request.body?.next);
        return renderPage(request, reply, "sign-in", "Sign in", { message: error.message, next }, error.spec.httpStatus);
      }
    },
  );
  // Behind the session check (its form's token is bound to the session it ends), free of charge.
  const signOutRoute = { config: { access: "public" as const }, onRequest: signedIn(deps, { charge: false }), preHandler: scope.csrf };
  app.post("/sign-out", signOutRoute, async (request, reply) => {
    const sessionId = sessionIdOf(request);
    if (sessionId !== null) await deps.sessions.signOut(sessionId);
    deps.log.info(sessionAudit(request, consoleCallerOf(request)), "console sign-out");
    clearSessionCookie(reply);
    return reply.redirect(`${CONSOLE_PATH}/sign-in`, 303);
  });
  app.get<{ Params: { name: string } }>("/assets/:name", { config: { access: "public" } }, (request, reply) => {
    // A Map: an object's lookup would find `constructor` or `__proto__`, whose missing file made
    // @fastify/static reject where nothing awaits it, and that unhandled rejection ended the process.
    const asset = ASSETS.get(request.params.name);
    if (asset === undefined) throw new BillingError("not_found");
    return reply.sendFile(asset.file, asset.dir, { maxAge: ASSET_MAX_AGE_MS });
  });
}

/**
 * The operator console under /console on the HTTP port: server-rendered pages (eta), partial
 * updates (htmx), a balance chart (uPlot). Its routes are public to the API's key check and
 * check a console session instead.
 */
export function consolePlugin(deps: ConsoleDependencies): FastifyPluginAsync {
  return async (root) => {
    await root.register(
      async (app) => {
        await app.register(cookie, { secret: deps.cookieSecret });
        await app.register(formbody);
        // The console's forms only: the API's JSON parser is not inherited (a JSON body → 400).
        app.removeContentTypeParser("application/json");
        await app.register(csrf, {
          cookieKey: "vb_console_csrf",
          // `secure` per request: renderPage passes reachedOverHttps to generateCsrf.
          cookieOpts: { signed: true, httpOnly: true, sameSite: "strict", path: CONSOLE_PATH },
          getToken: (request) => (request.body as { _csrf?: string } | undefined)?._csrf,
          getUserInfo: csrfBindingOf,
          csrfOpts: { hmacKey: csrfKeyOf(deps.cookieSecret) },
        });
        await app.register(view, {
          engine: { eta: new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true }) },
          root: VIEWS_DIR,
          production: true,
        });
        await app.register(fastifyStatic, { root: OWN_ASSETS_DIR, serve: false });
        app.decorateRequest("consoleCaller", null);
        // Pages, not API: kept out of /openapi.json.
        app.addHook("onRoute", (route) => {
          route.schema = { ...route.schema, hide: true };
        });
        app.addHook("onSend", async (request, reply, payload) => {
          setSecurityHeaders(reply, reachedOverHttps(request));
          if (!reply.hasHeader("cache-control")) void reply.header("cache-control", "no-store");
          return payload;
        });
        app.setErrorHandler((thrown, request, reply) => renderError(thrown, request, reply, deps));
        app.setNotFoundHandler((request, reply) => renderError(new BillingError("not_found"), request, reply, deps));
        const scope: ConsoleScope = { app, deps, signedIn: signedIn(deps, { charge: true }), csrf: app.csrfProtection };
        registerSessionRoutes(scope);
        registerPageRoutes(scope);
        registerActionRoutes(scope);
      },
      { prefix: CONSOLE_PATH },
    );
  };
}
