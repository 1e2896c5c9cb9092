import { Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiKeyPrefixOf } from "../../src/domain/api-key.js";
import { expectError } from "../support/client.js";
import { uid } from "../support/fixtures.js";
import { HttpTestClient, ok } from "../support/http.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Each call's log line says which key made it (its prefix, never the key) and its project, so that
// an operator can find what one key did, a leaked one say; a call no key was admitted for says none.

let server: TestServer;
const logLines: string[] = [];
const lineOf = (requestId: string, msg: string) =>
  logLines.map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line.requestId === requestId && line.msg === msg);
const withRequestId = (requestId: string) => {
  const metadata = new Metadata();
  metadata.set("x-request-id", requestId);
  return metadata;
};

beforeAll(async () => {
  server = await startTestServer({}, { logDestination: { write: (line: string) => void logLines.push(line) } });
});
afterAll(() => server.stop());

describe("a call's log line", () => {
  it("names the key's prefix and project over gRPC and HTTP, and nothing for a refused key", async () => {
    const project = await server.createProject();
    const key = await server.createKey({ project, scope: "write" });
    const client = server.clientWith(key.key);
    const customerId = uid("cust");
    const deposited = await client.call("deposit", { customerId, amount: 5n }, withRequestId("grpc-line-1"));
    expect(deposited.balance?.available).toBe(5n);
    expect(lineOf("grpc-line-1", "call")).toMatchObject({
      msg: "call",
      method: "Deposit",
      code: "ok",
      keyPrefix: key.prefix,
      projectId: project.id.toString(),
    });

    const http = new HttpTestClient(server.httpUrl, key.key);
    ok(await http.get(`/v1/customers/${customerId}`, { headers: { "x-request-id": "http-line-1" } }));
    expect(lineOf("http-line-1", "http call")).toMatchObject({
      msg: "http call",
      code: "ok",
      keyPrefix: key.prefix,
      projectId: project.id.toString(),
    });

    const stranger = `${apiKeyPrefixOf(key.key)}${"x".repeat(key.key.length - 16)}`;
    await expectError(server.clientWith(stranger).call("getCustomer", { customerId }, withRequestId("grpc-line-2")), "invalid_api_key");
    const refused = lineOf("grpc-line-2", "call");
    expect(refused).toMatchObject({ msg: "call", code: "invalid_api_key" });
    expect([refused?.keyPrefix, refused?.projectId]).toEqual([undefined, undefined]);
    expect(logLines.some((line) => line.includes(key.key) || line.includes(stranger))).toBe(false);
  });
});
