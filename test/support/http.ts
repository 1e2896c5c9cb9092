import { expect } from "vitest";
import { ERROR_CATALOG, type ErrorCode } from "../../src/errors/catalog.js";
import type { TestServer } from "./server.js";

export interface HttpResponse {
  readonly status: number;
  readonly headers: Headers;
  /** The parsed JSON body (undefined when empty). */
  readonly body: unknown;
}

export interface RequestOptions {
  /** Sent as JSON unless `raw` is given. */
  readonly body?: unknown;
  /** Sent as is. */
  readonly raw?: string;
  readonly headers?: Record<string, string>;
  /** Override the client's key; null sends none. */
  readonly key?: string | null;
}

/** fetch against the running server, with the client's key as `Authorization: Bearer`. */
export class HttpTestClient {
  constructor(
    readonly baseUrl: string,
    readonly key: string | null,
  ) {}

  async request(method: string, path: string, options: RequestOptions = {}): Promise<HttpResponse> {
    const key = options.key === undefined ? this.key : options.key;
    const headers: Record<string, string> = { ...(key === null ? {} : { authorization: `Bearer ${key}` }) };
    let body: string | undefined;
    if (options.raw !== undefined) body = options.raw;
    else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers["content-type"] = "application/json";
    }
    const init: RequestInit = { method, headers: { ...headers, ...options.headers } };
    if (body !== undefined) init.body = body;
    const response = await fetch(`${this.baseUrl}${path}`, init);
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text === "" ? undefined : (JSON.parse(text) as unknown) };
  }

  post(path: string, body: unknown, options: Omit<RequestOptions, "body"> = {}): Promise<HttpResponse> {
    return this.request("POST", path, { ...options, body });
  }

  get(path: string, options: RequestOptions = {}): Promise<HttpResponse> {
    return this.request("GET", path, options);
  }
}

/** An HTTP client of the test server presenting its write key (the one its gRPC client presents). */
export async function httpClientFor(server: TestServer): Promise<HttpTestClient> {
  return new HttpTestClient(server.httpUrl, server.apiKey);
}

/** The body of a success; fails the test with the error body otherwise. */
export function ok<T = Record<string, unknown>>(response: HttpResponse): T {
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body as T;
}

/**
 * Asserts the exact Velobase error body: status and type from the catalogue, the message (the
 * catalogue's unless given), exactly these details, retryable, and the request id of the header.
 */
export function expectHttpError(
  response: HttpResponse,
  code: ErrorCode,
  expected: { message?: string; details?: Record<string, unknown> } = {},
): void {
  const spec = ERROR_CATALOG[code];
  const requestId = response.headers.get("x-request-id");
  expect(requestId).toMatch(/\S/);
  expect({ status: response.status, body: response.body }).toEqual({
    status: spec.httpStatus,
    body: {
      error: {
        code,
        type: spec.type,
        message: expected.message ?? spec.message,
        details: expected.details ?? {},
        retryable: spec.httpStatus >= 500 || spec.httpStatus === 429,
        request_id: requestId,
      },
    },
  });
}

/** The page of an event listing (slot and entitlement events). */
export interface EventPageJson {
  readonly items: Array<Record<string, unknown>>;
  readonly total_count: number;
  readonly has_more: boolean;
  readonly next_cursor: string | null;
}

/**
 * Asserts that each write (POST with its body) and each read (GET) is refused without a key
 * (401 missing_api_key) and with an unknown one (401 invalid_api_key).
 */
export async function expectKeyRequired(
  http: HttpTestClient,
  writes: ReadonlyArray<readonly [string, Record<string, unknown>]>,
  reads: readonly string[],
): Promise<void> {
  const calls: Array<(key: string | null) => Promise<HttpResponse>> = [
    ...writes.map(
      ([path, body]) =>
        (key: string | null) =>
          http.post(path, body, { key }),
    ),
    ...reads.map((path) => (key: string | null) => http.get(path, { key })),
  ];
  for (const call of calls) {
    expectHttpError(await call(null), "missing_api_key");
    expectHttpError(await call("vb_live_fake"), "invalid_api_key");
  }
}

/** A signed-in console session of `key` (raw HTTP): its cookies and a form token bound to it. */
export async function consoleSession(baseUrl: string, key: string): Promise<{ cookie: string; token: string }> {
  const tokenOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? "";
  const cookiesOf = (response: Response) => response.headers.getSetCookie().map((c) => c.split(";")[0] ?? "");
  const signInPage = await fetch(`${baseUrl}/console/sign-in`);
  const csrfCookie = cookiesOf(signInPage).join("; ");
  const signedIn = await fetch(`${baseUrl}/console/sign-in`, {
    method: "POST",
    redirect: "manual",
    headers: { cookie: csrfCookie, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ _csrf: tokenOf(await signInPage.text()), api_key: key }).toString(),
  });
  expect(signedIn.status).toBe(303);
  const cookie = [csrfCookie, ...cookiesOf(signedIn)].join("; ");
  const customers = await fetch(`${baseUrl}/console/customers`, { headers: { cookie } });
  return { cookie, token: tokenOf(await customers.text()) };
}
