import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.js";

// What one client may hold of an instance: an HTTP request must arrive whole within
// HTTP_REQUEST_TIMEOUT_MS (a stalled body held its connection and up to 1 MiB of buffer for good).

let s: TestServer;

beforeAll(async () => {
  s = await startTestServer({ HTTP_REQUEST_TIMEOUT_MS: "1000" });
});

afterAll(async () => {
  await s?.stop();
});

/** Sends `head` and the first bytes of a longer body, then nothing; resolves with what the server sent and when it closed. */
function stalledRequest(head: string): Promise<{ text: string; afterMs: number }> {
  const started = Date.now();
  const { port } = new URL(s.httpUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => resolve({ text: Buffer.concat(chunks).toString("utf8"), afterMs: Date.now() - started }));
    socket.write(head);
  });
}

describe("an HTTP request that stops arriving", () => {
  it("is answered 400 and its connection closed once HTTP_REQUEST_TIMEOUT_MS has passed: a stalled body", async () => {
    const body = '{"customer_id":"c1","transaction_id":"t1","amount":1}';
    const head =
      `POST /v1/billing/deduct HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.apiKey}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length + 100}\r\n\r\n${body}`;
    const { text, afterMs } = await stalledRequest(head);
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(text).toContain('"message":"The request did not arrive in time."');
    expect(afterMs).toBeGreaterThanOrEqual(1_000);
    expect(afterMs).toBeLessThan(10_000);
  });

  it("and trickled headers", async () => {
    const { text, afterMs } = await stalledRequest("GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: a");
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(afterMs).toBeLessThan(10_000);
  });
});
