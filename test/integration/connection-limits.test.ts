import { connect as connectHttp2 } from "node:http2";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError } from "../support/client.js";
import { TestWatcher } from "../support/events.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { TcpProxy } from "../support/tcp-proxy.js";
import { waitFor } from "../support/waiting.js";

// What connections one client may hold of an instance: CONNECTIONS_PER_ADDRESS_MAX and
// CONNECTIONS_MAX per listener (19,900 idle gRPC connections from one client were all kept),
// gRPC connections with no call closed after GRPC_IDLE_TIMEOUT_MS, and those that stop answering
// the server's pings after GRPC_KEEPALIVE_MS, with their streams (a vanished watcher kept its
// place among EVENTS_WATCHERS_PER_KEY_MAX for good).

let s: TestServer;
let idle: TestServer;

beforeAll(async () => {
  [s, idle] = await Promise.all([
    startTestServer({
      CONNECTIONS_MAX: "4",
      CONNECTIONS_PER_ADDRESS_MAX: "3",
      GRPC_KEEPALIVE_MS: "500",
      EVENTS_WATCHERS_PER_KEY_MAX: "1",
    }),
    startTestServer({ GRPC_IDLE_TIMEOUT_MS: "300" }),
  ]);
});

afterAll(async () => {
  await Promise.all([s?.stop(), idle?.stop()]);
});

const HTTP2_PREFACE = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
const HTTP1_REQUEST = Buffer.from("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n");

interface Opened {
  readonly verdict: "accepted" | "refused";
  readonly socket: Socket;
}

/**
 * Connects from the loopback address `from` (any of 127.0.0.0/8 reaches the server) and says
 * `hello`: accepted when the server answers anything, refused when it closes having sent nothing.
 */
function open(port: number, from: string, hello: Buffer): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", localAddress: from });
    socket.once("data", () => resolve({ verdict: "accepted", socket }));
    socket.once("close", () => resolve({ verdict: "refused", socket }));
    socket.once("error", (error: NodeJS.ErrnoException) => (error.code === "ECONNRESET" ? undefined : reject(error)));
    socket.once("connect", () => socket.write(hello));
  });
}

const closed = (opened: Opened | undefined) =>
  new Promise<void>((resolve) => {
    const socket = opened?.socket;
    if (!socket || socket.closed) return resolve();
    socket.once("close", () => resolve());
    socket.destroy();
  });

async function refusedCount(server: TestServer, transport: string, reason: string): Promise<number> {
  const metric = await server.app.metrics.connectionsRefused.get();
  return metric.values.find((v) => v.labels.transport === transport && v.labels.reason === reason)?.value ?? 0;
}

describe("connections per client address", () => {
  it("past CONNECTIONS_PER_ADDRESS_MAX a gRPC connection is closed unread, other addresses are served, and a closed one gives its place back", async () => {
    const port = s.app.port;
    const held = [
      await open(port, "127.0.0.2", HTTP2_PREFACE),
      await open(port, "127.0.0.2", HTTP2_PREFACE),
      await open(port, "127.0.0.2", HTTP2_PREFACE),
    ];
    expect(held.map((o) => o.verdict)).toEqual(["accepted", "accepted", "accepted"]);
    expect((await open(port, "127.0.0.2", HTTP2_PREFACE)).verdict).toBe("refused");
    expect(await refusedCount(s, "grpc", "address")).toBe(1);
    // The test client's own connection (from 127.0.0.1) is another address's.
    await expectError(s.client.call("getCustomer", { customerId: "nobody" }), "customer_not_found");
    await closed(held[0]);
    await waitFor(async () => {
      const again = await open(port, "127.0.0.2", HTTP2_PREFACE);
      if (again.verdict === "accepted") held[0] = again;
      return again.verdict === "accepted";
    }, "a place for 127.0.0.2 again");
    await Promise.all(held.map(closed));
  });
});

describe("connections in all", () => {
  it("past CONNECTIONS_MAX an HTTP connection is closed unread, whatever its address, until one closes", async () => {
    const port = Number(new URL(s.httpUrl).port);
    const held = await Promise.all(["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"].map((from) => open(port, from, HTTP1_REQUEST)));
    expect(held.map((o) => o.verdict)).toEqual(["accepted", "accepted", "accepted", "accepted"]);
    expect((await open(port, "127.0.0.6", HTTP1_REQUEST)).verdict).toBe("refused");
    expect(await refusedCount(s, "http", "instance")).toBe(1);
    await closed(held[3]);
    await waitFor(async () => {
      const again = await open(port, "127.0.0.6", HTTP1_REQUEST);
      held[3] = again;
      return again.verdict === "accepted";
    }, "a place in the listener again");
    await Promise.all(held.map(closed));
  });
});

describe("a gRPC client that stops answering", () => {
  it("loses its connection at the keepalive ping, and its event stream gives its place back", async () => {
    await s.client.call("deposit", { customerId: "watched", amount: 5n });
    const proxy = new TcpProxy(s.app.port);
    const proxyPort = await proxy.start();
    const vanishing = new TestWatcher(proxyPort, s.apiKey);
    await vanishing.count(1);
    const refusedMeanwhile = new TestWatcher(s.app.port, s.apiKey);
    expect((await refusedMeanwhile.ended)?.details).toBe("At most 1 event streams may be open per API key.");
    proxy.freeze();
    // Frozen, the proxy passes no byte either way but keeps both connections open: only the
    // server's unanswered ping can end the stream.
    let after = new TestWatcher(s.app.port, s.apiKey);
    await waitFor(async () => {
      const verdict = await Promise.race([after.count(1).then(() => "open"), after.ended.then(() => "refused")]);
      if (verdict === "refused") after = new TestWatcher(s.app.port, s.apiKey);
      return verdict === "open";
    }, "the frozen watcher's place");
    expect(after.events.map((e) => e.customerId)).toEqual(["watched"]);
    after.close();
    vanishing.close();
    await proxy.cut();
  });
});

describe("an idle gRPC connection", () => {
  it("is closed with GOAWAY (NO_ERROR) after GRPC_IDLE_TIMEOUT_MS, and a client's next call reconnects", async () => {
    const session = connectHttp2(`http://127.0.0.1:${idle.app.port}`);
    const goaway = await new Promise<number>((resolve) => session.once("goaway", (code: number) => resolve(code)));
    expect(goaway).toBe(0);
    session.destroy();
    await idle.client.call("deposit", { customerId: "c", amount: 7n });
    await new Promise((resolve) => setTimeout(resolve, 600));
    const after = await idle.client.call("getCustomer", { customerId: "c" });
    expect(after.balance?.available).toBe(7n);
  });
});
