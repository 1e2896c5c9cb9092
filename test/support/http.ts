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
