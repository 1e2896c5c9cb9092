import { credentials, type ChannelCredentials, type ServiceError, status } from "@grpc/grpc-js";
import { expect } from "vitest";
import { BillingClient } from "../../src/client/billing-client.js";
import { ERROR_CATALOG, type ErrorCode } from "../../src/errors/catalog.js";
import { decodeStatusDetails, ERROR_DOMAIN } from "../../src/grpc/status-details.js";

/** The product's typed client, on a loopback port; with `apiKey`, every call presents it. */
export class TestClient extends BillingClient {
  constructor(port: number, apiKey: string | null = null, channelCredentials: ChannelCredentials = credentials.createInsecure()) {
    super(`127.0.0.1:${port}`, channelCredentials, apiKey);
  }
}

/** Asserts a failed call carries exactly this catalogue error; returns its ErrorInfo metadata. */
export async function expectError(
  promise: Promise<unknown>,
  code: ErrorCode,
  message?: string,
  options: { messageFree?: boolean } = {},
): Promise<Record<string, string>> {
  const error = await promise.then(
    () => {
      throw new Error(`expected ${code}, but the call succeeded`);
    },
    (e: unknown) => e as ServiceError,
  );
  const spec = ERROR_CATALOG[code];
  const { detail, info, retry } = decodeStatusDetails(error.metadata);
  expect({ status: status[error.code], code: detail?.code }).toEqual({ status: spec.grpcStatus, code });
  expect(detail?.type).toBe(spec.type);
  if (options.messageFree) expect(detail?.message).toMatch(/\S/);
  else expect(detail?.message).toBe(message ?? spec.message);
  expect(error.details).toBe(detail?.message);
  expect(info?.reason).toBe(code);
  expect(info?.domain).toBe(ERROR_DOMAIN);
  expect(retry !== undefined).toBe(spec.retryable);
  return info?.metadata ?? {};
}
