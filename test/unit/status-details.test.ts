import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { BillingError } from "../../src/errors/billing-error.js";
import { ERROR_CATALOG, ERROR_CODES, RETRY_DELAY_MS } from "../../src/errors/catalog.js";
import { decodeStatusDetails, toServiceError } from "../../src/grpc/status-details.js";

// The wire form of every catalogue code, including the auth and rate-limit codes that no billing
// operation raises: status code, message and the google.rpc.Status details a client decodes.
describe("toServiceError and decodeStatusDetails", () => {
  it("retryable codes get the default delay, which is a whole second", () => {
    expect(RETRY_DELAY_MS).toBe(1000);
  });

  it.each(ERROR_CODES)("%s", (code) => {
    const spec = ERROR_CATALOG[code];
    const answer = toServiceError(new BillingError(code, undefined, { requested: 7n, available: 3n }));
    expect(answer.code).toBe(status[spec.grpcStatus]);
    expect(answer.details).toBe(spec.message);
    const decoded = decodeStatusDetails(answer.metadata);
    expect(decoded).toEqual({
      detail: { code, type: spec.type, message: spec.message },
      info: { reason: code, domain: "billing.velobase", metadata: { requested: "7", available: "3" } },
      ...(spec.retryable ? { retry: { retryDelay: { seconds: 1n, nanos: 0 } } } : {}),
    });
  });

  it("a known wait travels as the retry delay, rounded up to the millisecond", () => {
    const answer = toServiceError(new BillingError("rate_limit_exceeded", undefined, {}, { retryDelayMs: 2500.2 }));
    expect(decodeStatusDetails(answer.metadata).retry).toEqual({ retryDelay: { seconds: 2n, nanos: 501_000_000 } });
  });
});
