import { connect } from "node:net";
import { Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetCustomerRequest } from "../../gen/velobase/billing/v1/billing.js";
import { generateApiKey } from "../../src/domain/api-key.js";
import { UNKNOWN_KEYS_PER_PEER_PER_SECOND } from "../../src/tenancy/peer-failures.js";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { expectError, TestClient } from "../support/client.js";
import { commitEvents, testEvent, TestWatcher } from "../support/events.js";
import { startTestServer, type TestServer } from "../support/server.js";

// What one client may hold of an instance: an HTTP request must arrive whole within
// HTTP_REQUEST_TIMEOUT_MS (a stalled body held its connection and up to 1 MiB of buffer for good),
// and a key may hold EVENTS_WATCHERS_PER_KEY_MAX event streams, the instance EVENTS_WATCHERS_MAX
// (a thousand streams of one key slowed every other caller to seconds), and an address may present
// UNKNOWN_KEYS_PER_PEER_PER_SECOND made-up keys a second before its new keys go unlooked-up.

let s: TestServer;
let proxied: TestServer;
/** The log lines of `s` (level info and up). */
const lines: Array<{ msg?: string; requestId?: string; route?: string; code?: string; status?: number }> = [];

beforeAll(async () => {
  [s, proxied] = await Promise.all([
    startTestServer(
      {
        HTTP_REQUEST_TIMEOUT_MS: "1000",
        EVENTS_WATCHERS_PER_KEY_MAX: "2",
        EVENTS_WATCHERS_PER_PROJECT_MAX: "3",
        EVENTS_WATCHERS_MAX: "4",
      },
      { logDestination: { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) } },
    ),
    startTestServer({ TRUSTED_PROXIES: "127.0.0.1" }),
  ]);
});

afterAll(async () => {
  await Promise.all([s?.stop(), proxied?.stop()]);
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
    // One line, under the request id the client was given, naming the route; not a second one
    // saying the client closed the connection (the timeout closed it).
    const requestId = /x-request-id: (\S+)/i.exec(text)?.[1];
    await new Promise((resolve) => setTimeout(resolve, 300)); // the body's own error comes after the close
    const said = lines.filter((l) => l.requestId === requestId || l.msg === "the client closed the connection before its request arrived");
    expect(said.map(({ msg, route, code, status }) => ({ msg, route, code, status }))).toEqual([
      { msg: "http call", route: "POST /v1/billing/deduct", code: "invalid_argument", status: 400 },
    ]);
  });

  it("refused before its body arrived (no key), is answered once and its connection closed, with no second answer at the timeout", async () => {
    const head = 'POST /v1/billing/deduct HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"cus';
    const { text } = await stalledRequest(head);
    expect(text.match(/HTTP\/1\.1 /g)).toEqual(["HTTP/1.1 "]);
    expect(text).toMatch(/^HTTP\/1\.1 401 /);
    expect(text.toLowerCase()).toContain("connection: close");
    expect(text).toContain('"code":"missing_api_key"');
  });

  it("and trickled headers", async () => {
    const { text, afterMs } = await stalledRequest("GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: a");
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(afterMs).toBeLessThan(10_000);
  });
});

describe("event streams", () => {
  it("are refused over the key's limit, the project's and the instance's, and a closed one gives its place back", async () => {
    const other = (await s.createKey({ scope: "read" })).key;
    await s.client.call("deposit", { customerId: "watched", amount: 5n });
    const elsewhere = (await s.createKey({ project: await s.createProject({ name: "watchers-elsewhere" }), scope: "write" })).key;
    await new TestClient(s.app.port, elsewhere).call("deposit", { customerId: "watched", amount: 5n });
    // Admitted streams get the deposit's event at once (they start from the oldest kept).
    const open = async (key: string) => {
      const watcher = new TestWatcher(s.app.port, key);
      await Promise.race([watcher.count(1), watcher.ended]);
      return watcher;
    };
    const refused = (watcher: TestWatcher) =>
      watcher.ended.then((error) => {
        throw error ?? new Error("the stream ended without an error");
      });
    const first = await open(s.apiKey);
    const second = await open(s.apiKey);
    const third = new TestWatcher(s.app.port, s.apiKey);
    expect(await expectError(refused(third), "rate_limit_exceeded", "At most 2 event streams may be open per API key.")).toEqual({
      open_streams_max: "2",
    });
    const ofOther = await open(other);
    // The project holds 3: its other key is refused too, another project is not.
    const beyond = new TestWatcher(s.app.port, other);
    expect(
      await expectError(refused(beyond), "rate_limit_exceeded", "At most 3 event streams may be open per project on an instance."),
    ).toEqual({ open_streams_max: "3" });
    const ofElsewhere = await open(elsewhere);
    const full = new TestWatcher(s.app.port, elsewhere);
    await expectError(refused(full), "rate_limit_exceeded", "This instance serves as many event streams as it can; retry later.");
    first.close();
    // Its slot comes back once the server has seen the cancel.
    let again = new TestWatcher(s.app.port, other);
    for (
      let tries = 0;
      (await Promise.race([again.count(1).then(() => "open"), again.ended.then(() => "refused")])) === "refused";
      tries++
    ) {
      expect(tries).toBeLessThan(50);
      again.close();
      await new Promise((resolve) => setTimeout(resolve, 20));
      again = new TestWatcher(s.app.port, other);
    }
    expect(again.events).toHaveLength(1);
    for (const watcher of [second, ofOther, again, third, beyond, ofElsewhere, full]) watcher.close();
  });

  it("a stream cancelled while the server waits for its client to read gives its place back", async () => {
    const key = (await s.createKey({ scope: "read" })).key;
    // About 2 MB of events: far more than the connection's flow-control windows hold.
    const blob = "x".repeat(1_000);
    for (let i = 0; i < 4; i++) {
      await commitEvents(
        s.app,
        Array.from({ length: 500 }, () => testEvent(s.app, { customerId: "backlog", payload: { data: { blob } } })),
      );
    }
    const stalled = [new TestWatcher(s.app.port, key), new TestWatcher(s.app.port, key)];
    for (const watcher of stalled) watcher.pause();
    // Long enough for the server to fill both windows and wait for the client to read.
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const watcher of stalled) watcher.close();
    // Both places come back once the server has seen the cancels.
    for (let opened = 0, tries = 0; opened < 2; tries++) {
      expect(tries).toBeLessThan(50);
      const again = new TestWatcher(s.app.port, key);
      const outcome = await Promise.race([again.count(1).then(() => "open"), again.ended.then(() => "refused")]);
      if (outcome === "open") opened++;
      else await new Promise((resolve) => setTimeout(resolve, 20));
      if (outcome === "refused") again.close();
      else stalled.push(again);
    }
    for (const watcher of stalled) watcher.close();
  });
});

describe("made-up API keys from one address", () => {
  it("are refused unlooked-up past the limit, over gRPC and HTTP, while a known key still works; the next second they are looked up again", async () => {
    // One connection for all of them, so they follow each other well inside one second.
    const madeUp = () =>
      new Promise<unknown>((resolve, reject) => {
        const metadata = new Metadata();
        metadata.set("authorization", `Bearer ${generateApiKey("test")}`);
        s.client.raw.getCustomer(GetCustomerRequest.fromPartial({ customerId: "anyone" }), metadata, (error, response) =>
          error ? reject(error) : resolve(response),
        );
      });
    // A whole window of its own, so the count starts from nothing.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    for (let i = 0; i < UNKNOWN_KEYS_PER_PEER_PER_SECOND; i++) await expectError(madeUp(), "invalid_api_key");
    const facts = await expectError(madeUp(), "rate_limit_exceeded", "Too many unknown API keys from this address; retry later.");
    expect(facts.unknown_keys_per_second).toBe(String(UNKNOWN_KEYS_PER_PEER_PER_SECOND));
    const overHttp = await fetch(`${s.httpUrl}/v1/customers/anyone`, { headers: { authorization: `Bearer ${generateApiKey("test")}` } });
    expect(overHttp.status).toBe(429);
    expect(((await overHttp.json()) as { error: { code: string } }).error.code).toBe("rate_limit_exceeded");
    // A key looked up before (its cache entry long expired) is looked up again all the same.
    await expectError(s.client.call("getCustomer", { customerId: "nobody-yet" }), "customer_not_found");
    // A real key never seen here is new to it too: refused until the address's second is over.
    const fresh = (await s.createKey({ scope: "read" })).key;
    await expectError(
      s.clientWith(fresh).call("getCustomer", { customerId: "nobody-yet" }),
      "rate_limit_exceeded",
      "Too many unknown API keys from this address; retry later.",
    );
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await expectError(madeUp(), "invalid_api_key");
    await expectError(s.clientWith(fresh).call("getCustomer", { customerId: "nobody-yet" }), "customer_not_found");
  });

  it("are bounded when sent all at once too: a look-up counts from when it starts", async () => {
    const madeUp = () =>
      new Promise<string>((resolve) => {
        const metadata = new Metadata();
        metadata.set("authorization", `Bearer ${generateApiKey("test")}`);
        s.client.raw.getCustomer(GetCustomerRequest.fromPartial({ customerId: "anyone" }), metadata, (error) =>
          resolve(decodeStatusDetails(error?.metadata).detail?.code ?? "ok"),
        );
      });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const codes = await Promise.all(Array.from({ length: 3 * UNKNOWN_KEYS_PER_PEER_PER_SECOND }, madeUp));
    expect(codes.filter((c) => c === "invalid_api_key")).toHaveLength(UNKNOWN_KEYS_PER_PEER_PER_SECOND);
    expect(codes.filter((c) => c === "rate_limit_exceeded")).toHaveLength(2 * UNKNOWN_KEYS_PER_PEER_PER_SECOND);
  });
});

describe("made-up API keys through a proxy", () => {
  const overHttp = async (server: TestServer, forwardedFor: string) => {
    const headers = { authorization: `Bearer ${generateApiKey("test")}`, "x-forwarded-for": forwardedFor };
    const response = await fetch(`${server.httpUrl}/v1/customers/anyone`, { headers });
    return ((await response.json()) as { error: { code: string } }).error.code;
  };
  const overGrpc = (server: TestServer, forwardedFor: string) =>
    new Promise<string>((resolve) => {
      const metadata = new Metadata();
      metadata.set("authorization", `Bearer ${generateApiKey("test")}`);
      metadata.set("x-forwarded-for", forwardedFor);
      server.client.raw.getCustomer(GetCustomerRequest.fromPartial({ customerId: "anyone" }), metadata, (error) =>
        resolve(decodeStatusDetails(error?.metadata).detail?.code ?? "ok"),
      );
    });
  const twenty = async (server: TestServer, forwardedFor: string) => {
    const codes: string[] = [];
    for (let i = 0; i < UNKNOWN_KEYS_PER_PEER_PER_SECOND; i++) codes.push(await overHttp(server, forwardedFor));
    return codes;
  };

  it("are counted per client address X-Forwarded-For names when TRUSTED_PROXIES holds the peer, over HTTP and gRPC alike", async () => {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(new Set(await twenty(proxied, "203.0.113.1"))).toEqual(new Set(["invalid_api_key"]));
    expect(await overGrpc(proxied, "203.0.113.1")).toBe("rate_limit_exceeded");
    expect(await overHttp(proxied, "203.0.113.1")).toBe("rate_limit_exceeded");
    // Another client behind the same proxy is still looked up; so is one whose own header names the
    // throttled address left of what the proxy added.
    expect(await overGrpc(proxied, "203.0.113.2")).toBe("invalid_api_key");
    expect(await overHttp(proxied, "203.0.113.1, 203.0.113.3")).toBe("invalid_api_key");
  });

  it("are counted per socket address when the peer is no trusted proxy: its X-Forwarded-For is not believed", async () => {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(new Set(await twenty(s, "203.0.113.1"))).toEqual(new Set(["invalid_api_key"]));
    expect(await overGrpc(s, "203.0.113.2")).toBe("rate_limit_exceeded");
    expect(await overHttp(s, "203.0.113.3")).toBe("rate_limit_exceeded");
  });
});
