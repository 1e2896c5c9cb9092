import { once } from "node:events";
import { createServer, request as httpRequest, type Server as NodeHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  credentials,
  makeGenericClientConstructor,
  Metadata,
  Server,
  ServerCredentials,
  status,
  type MethodDefinition,
  type ServiceError,
} from "@grpc/grpc-js";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callSignal as httpCallSignal } from "../../src/http/call-signal.js";
import { unary } from "../../src/grpc/unary.js";

// The signals are watched through real servers on real ports: a grpc-js server whose one method is
// wrapped by `unary` (as every RPC is), and a node:http server (under fastify's request hook).

const WAIT: MethodDefinition<Buffer, Buffer> = {
  path: "/test.Signal/Wait",
  requestStream: false,
  responseStream: false,
  requestSerialize: (value) => value,
  requestDeserialize: (bytes) => bytes,
  responseSerialize: (value) => value,
  responseDeserialize: (bytes) => bytes,
};

/** What the handler saw: its signal once the call started, and the reason it aborted with. */
interface Seen {
  readonly started: Promise<AbortSignal>;
  readonly aborted: Promise<unknown>;
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("gRPC: the handler's signal", () => {
  let server: Server;
  let address: string;
  const calls: Seen[] = [];
  let nextCall = deferred<Seen>();

  beforeAll(async () => {
    server = new Server();
    const handler = unary<Buffer, Buffer>({ log: pino({ level: "silent" }) }, "Wait", async (_request, _metadata, signal) => {
      const started = deferred<AbortSignal>();
      const aborted = deferred<unknown>();
      const seen = { started: started.promise, aborted: aborted.promise };
      calls.push(seen);
      nextCall.resolve(seen);
      started.resolve(signal);
      await once(signal, "abort");
      aborted.resolve(signal.reason);
      return Buffer.alloc(0);
    });
    server.addService({ Wait: WAIT }, { Wait: handler });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    address = `127.0.0.1:${port}`;
  });

  afterAll(() => server.forceShutdown());

  const Client = makeGenericClientConstructor({ Wait: WAIT }, "Signal");

  function callWait(deadline?: Date) {
    const client = new Client(address, credentials.createInsecure());
    const finished = deferred<ServiceError | null>();
    const wait = client.Wait as unknown as (
      request: Buffer,
      metadata: Metadata,
      options: { deadline?: Date },
      callback: (error: ServiceError | null) => void,
    ) => { cancel(): void };
    const call = wait.call(client, Buffer.alloc(0), new Metadata(), deadline ? { deadline } : {}, (error) => finished.resolve(error));
    return { call, finished: finished.promise, close: () => client.close() };
  }

  it("aborts with a TimeoutError when the call's deadline passes, and the client gets DEADLINE_EXCEEDED", async () => {
    nextCall = deferred<Seen>();
    const { finished, close } = callWait(new Date(Date.now() + 300));
    const seen = await nextCall.promise;
    const signal = await seen.started;
    const reason = await seen.aborted;
    expect(signal.aborted).toBe(true);
    expect(reason).toBeInstanceOf(DOMException);
    expect((reason as DOMException).name).toBe("TimeoutError");
    expect((await finished)?.code).toBe(status.DEADLINE_EXCEEDED);
    close();
  });

  it("aborts with an AbortError when the client cancels the call", async () => {
    nextCall = deferred<Seen>();
    const { call, finished, close } = callWait();
    const seen = await nextCall.promise;
    const signal = await seen.started;
    expect(signal.aborted).toBe(false);
    call.cancel();
    const reason = await seen.aborted;
    expect((reason as DOMException).name).toBe("AbortError");
    expect((await finished)?.code).toBe(status.CANCELLED);
    close();
  });
});

describe("HTTP: callSignal(response)", () => {
  let server: NodeHttpServer;
  let port: number;
  let nextRequest = deferred<{ signal: AbortSignal; closed: Promise<boolean> }>();

  beforeAll(async () => {
    server = createServer((request, response) => {
      const { signal } = httpCallSignal(response);
      const closed = deferred<boolean>();
      // Registered after callSignal's own listener: by now it has decided.
      response.on("close", () => closed.resolve(signal.aborted));
      nextRequest.resolve({ signal, closed: closed.promise });
      request.resume();
      if (request.url === "/answer") request.on("end", () => response.end("done"));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = (server.address() as AddressInfo).port;
  });

  afterAll(() => server.close());

  it("stays unaborted through a request answered in full (its body read, the reply sent)", async () => {
    nextRequest = deferred();
    const answered = new Promise<string>((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port, path: "/answer", method: "POST" }, (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString();
        });
        res.on("end", () => resolve(text));
      });
      req.on("error", reject);
      req.end(JSON.stringify({ amount: 1 }));
    });
    expect(await answered).toBe("done");
    const seen = await nextRequest.promise;
    expect(await seen.closed).toBe(false);
    expect(seen.signal.aborted).toBe(false);
  });

  it("aborts with an AbortError when the client goes away before the reply", async () => {
    nextRequest = deferred();
    const req = httpRequest({ host: "127.0.0.1", port, path: "/never", method: "POST" });
    req.on("error", () => undefined);
    req.end(JSON.stringify({ amount: 1 }));
    const seen = await nextRequest.promise;
    expect(seen.signal.aborted).toBe(false);
    req.destroy();
    await once(seen.signal, "abort");
    expect((seen.signal.reason as DOMException).name).toBe("AbortError");
    expect(await seen.closed).toBe(true);
  });
});
