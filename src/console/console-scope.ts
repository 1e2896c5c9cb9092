import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AuthenticatedCaller } from "../tenancy/authenticator.js";
import type { ConsoleDependencies } from "./console-dependencies.js";
import { FORMAT } from "./page-format.js";
import { csrfBindingOf } from "./csrf-binding.js";
import { reachedOverHttps } from "./session-cookie.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The signed-in key of a console request (set by `signedIn`). */
    consoleCaller: AuthenticatedCaller | null;
  }
}

/** Routes of the console's scope: what every console route shares. */
export interface ConsoleScope {
  readonly app: FastifyInstance;
  readonly deps: ConsoleDependencies;
  /** onRequest hook of routes that need a signed-in key. */
  readonly signedIn: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  /** preHandler hook of every form post. */
  readonly csrf: FastifyInstance["csrfProtection"];
}

/** What every page's layout shows: who is signed in, the CSRF token of its forms, the request id. */
export interface PageFrame {
  readonly title: string;
  readonly session: { readonly keyPrefix: string; readonly scope: string } | null;
  readonly csrf: string;
  readonly requestId: string;
}

/** Renders a template with the page frame and the formatters as `it`. */
export async function renderPage(
  request: FastifyRequest,
  reply: FastifyReply,
  template: string,
  title: string,
  data: Record<string, unknown>,
  status = 200,
): Promise<FastifyReply> {
  const caller = request.consoleCaller;
  const frame: PageFrame = {
    title,
    session: caller ? { keyPrefix: caller.keyPrefix, scope: caller.scope } : null,
    csrf: reply.generateCsrf({ secure: reachedOverHttps(request), userInfo: csrfBindingOf(request) }),
    requestId: request.id,
  };
  const html = await reply.viewAsync(template, { ...frame, ...data, f: FORMAT });
  return reply.status(status).type("text/html; charset=utf-8").send(html);
}

/** The caller of a route behind `signedIn`. */
export function consoleCallerOf(request: FastifyRequest): AuthenticatedCaller {
  if (request.consoleCaller === null) throw new Error("a console route ran without a signed-in caller");
  return request.consoleCaller;
}

/** A fresh idempotency key for a form, made when the form is rendered: a second submit replays. */
export const newFormKey = (): string => `console-${randomUUID()}`;
