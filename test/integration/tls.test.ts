import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request as httpsRequest } from "node:https";
import { credentials, type ServiceError, status } from "@grpc/grpc-js";
import { generate } from "selfsigned";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError, TestClient } from "../support/client.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { collect, spawnMain } from "../support/spawn.js";

// TLS and mutual TLS are configuration: certificates made here, signed by a CA made here.
interface Pem {
  readonly cert: string;
  readonly key: string;
}

let dir: string;
let ca: Pem;
let serverPem: Pem;
let clientPem: Pem;
let strangerPem: Pem;

async function issue(commonName: string, signer: Pem | null, usage: "server" | "client" | "ca"): Promise<Pem> {
  const extensions =
    usage === "ca"
      ? [
          { name: "basicConstraints" as const, cA: true, critical: true },
          { name: "keyUsage" as const, keyCertSign: true, cRLSign: true, digitalSignature: true },
        ]
      : usage === "server"
        ? [
            { name: "extKeyUsage" as const, serverAuth: true },
            {
              name: "subjectAltName" as const,
              altNames: [
                { type: 2 as const, value: "localhost" },
                { type: 7 as const, ip: "127.0.0.1" },
              ],
            },
          ]
        : [{ name: "extKeyUsage" as const, clientAuth: true }];
  const made = await generate([{ name: "commonName", value: commonName }], {
    keyType: "ec",
    algorithm: "sha256",
    extensions,
    ...(signer ? { ca: { key: signer.key, cert: signer.cert } } : {}),
  });
  return { cert: made.cert, key: made.private };
}

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vb-tls-"));
  ca = await issue("velobase test CA", null, "ca");
  serverPem = await issue("localhost", ca, "server");
  clientPem = await issue("billing-client", ca, "client");
  const otherCa = await issue("someone else's CA", null, "ca");
  strangerPem = await issue("stranger", otherCa, "client");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const serverFiles = () => ({ TLS_CERT_FILE: file("server.crt", serverPem.cert), TLS_KEY_FILE: file("server.key", serverPem.key) });
const tlsClient = (s: TestServer, client?: Pem) =>
  new TestClient(
    s.app.port,
    s.apiKey,
    client
      ? credentials.createSsl(Buffer.from(ca.cert), Buffer.from(client.key), Buffer.from(client.cert))
      : credentials.createSsl(Buffer.from(ca.cert)),
  );

/** An HTTPS call to the server's HTTP API trusting the test CA, presenting `client` if given. */
function overHttps(s: TestServer, method: string, path: string, client?: Pem, body?: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const call = httpsRequest(
      `${s.httpUrl}${path}`,
      {
        method,
        ca: ca.cert,
        servername: "localhost",
        ...(client ? { cert: client.cert, key: client.key } : {}),
        headers: { authorization: `Bearer ${s.apiKey}`, ...(payload === undefined ? {} : { "content-type": "application/json" }) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }));
        response.on("error", reject);
      },
    );
    call.on("error", reject);
    call.end(payload);
  });
}

/** The HTTPS call fails below HTTP: no status at all, the TLS connection is refused. */
async function refusedAtTls(call: Promise<{ status: number }>): Promise<void> {
  const outcome = await call.then(
    (answer) => `HTTP ${answer.status}`,
    (e: unknown) => (e as NodeJS.ErrnoException).code ?? String(e),
  );
  expect(outcome).toMatch(/^(ECONNRESET|EPIPE|ERR_SSL_)/);
}

async function unavailable(call: Promise<unknown>): Promise<void> {
  const error = (await call.then(
    () => new Error("expected the call to fail"),
    (e: unknown) => e,
  )) as ServiceError;
  expect(status[error.code]).toBe("UNAVAILABLE");
}

describe("TLS", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer(serverFiles());
  });
  afterAll(async () => s?.stop());

  it("marks the console's cookies Secure", async () => {
    const cookies = await new Promise<string[]>((resolve, reject) => {
      const call = httpsRequest(`${s.httpUrl}/console/sign-in`, { ca: ca.cert, servername: "localhost" }, (response) => {
        response.resume();
        response.on("end", () => resolve(response.headers["set-cookie"] ?? []));
      });
      call.on("error", reject);
      call.end();
    });
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) expect(cookie).toMatch(/; Secure(;|$)/);
  });

  it("serves over TLS and still asks for a key", async () => {
    expect(s.app.security).toBe("tls");
    const client = tlsClient(s);
    try {
      const answer = await client.call("deposit", { customerId: "tls-customer", amount: 3n });
      expect(answer.balance?.available).toBe(3n);
      await expectError(
        new TestClient(s.app.port, null, credentials.createSsl(Buffer.from(ca.cert))).call("getCustomer", { customerId: "x" }),
        "missing_api_key",
      );
    } finally {
      client.close();
    }
  });

  it("serves the HTTP API over HTTPS from the same files, still asking for a key", async () => {
    expect(s.httpUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const deposited = await overHttps(s, "POST", "/v1/customers/deposit", undefined, { customer_id: "https-customer", amount: 7 });
    expect([deposited.status, (deposited.body as { total_amount: number }).total_amount]).toEqual([200, 7]);
    const customer = await overHttps(s, "GET", "/v1/customers/https-customer");
    expect(customer.status).toBe(200);
    const cleartext = await fetch(`${s.httpUrl.replace("https:", "http:")}/v1/health`).then(
      (r) => `HTTP ${r.status}`,
      (e: unknown) => String(e),
    );
    expect(cleartext).not.toMatch(/^HTTP 2/);
  });

  it("refuses a plaintext client", async () => {
    const plaintext = new TestClient(s.app.port, s.apiKey);
    try {
      await unavailable(plaintext.call("getCustomer", { customerId: "tls-customer" }));
    } finally {
      plaintext.close();
    }
  });
});

describe("mutual TLS", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ ...serverFiles(), TLS_CLIENT_CA_FILE: file("client-ca.crt", ca.cert) });
  });
  afterAll(async () => s?.stop());

  it("serves a client whose certificate the CA signed", async () => {
    expect(s.app.security).toBe("mtls");
    const client = tlsClient(s, clientPem);
    try {
      expect((await client.call("deposit", { customerId: "mtls-customer", amount: 4n })).balance?.available).toBe(4n);
    } finally {
      client.close();
    }
  });

  it("serves HTTPS to a client whose certificate the CA signed", async () => {
    expect(s.httpUrl).toMatch(/^https:/);
    const deposited = await overHttps(s, "POST", "/v1/customers/deposit", clientPem, { customer_id: "mtls-http", amount: 9 });
    expect([deposited.status, (deposited.body as { total_amount: number }).total_amount]).toEqual([200, 9]);
  });

  it("refuses at the TLS layer an HTTPS client without a certificate, or with one another CA signed, bearer key or not", async () => {
    await refusedAtTls(overHttps(s, "GET", "/v1/customers/mtls-http"));
    await refusedAtTls(overHttps(s, "GET", "/v1/customers/mtls-http", strangerPem));
    await refusedAtTls(overHttps(s, "POST", "/v1/customers/deposit", undefined, { customer_id: "mtls-http", amount: 1 }));
    const unchanged = await overHttps(s, "GET", "/v1/customers/mtls-http", clientPem);
    expect((unchanged.body as { wallets: { default: { total: number } } }).wallets.default.total).toBe(9);
  });

  it("refuses a client without a certificate, or with one another CA signed", async () => {
    for (const client of [tlsClient(s), tlsClient(s, strangerPem)]) {
      try {
        await unavailable(client.call("getCustomer", { customerId: "mtls-customer" }));
      } finally {
        client.close();
      }
    }
  });
});

describe("TLS files that cannot serve", () => {
  it.each([
    [
      "a certificate file that is no PEM",
      () => ({ TLS_CERT_FILE: file("hosts.crt", "127.0.0.1 localhost\n"), TLS_KEY_FILE: file("k.key", serverPem.key) }),
    ],
    [
      "a key that is not the certificate's",
      () => ({ TLS_CERT_FILE: file("s.crt", serverPem.cert), TLS_KEY_FILE: file("c.key", clientPem.key) }),
    ],
  ])("%s: one line, exit 2, before the database is touched", async (_name, files) => {
    const exit = await collect(spawnMain({ ...files(), DATABASE_URL: "mysql://root@127.0.0.1:1/never" })).exited;
    expect(exit.code).toBe(2);
    expect(exit.stderr).toMatch(
      /^velobase-billing: TLS_CERT_FILE and TLS_KEY_FILE are not a PEM certificate and its private key: ERR_\w+\n$/,
    );
  });

  it("a client CA file that holds no certificate: one line, exit 2 (it would refuse every client)", async () => {
    const caFile = file("no-ca.pem", "not a certificate\n");
    const exit = await collect(spawnMain({ ...serverFiles(), TLS_CLIENT_CA_FILE: caFile, DATABASE_URL: "mysql://root@127.0.0.1:1/never" }))
      .exited;
    expect(exit.code).toBe(2);
    expect(exit.stderr).toMatch(new RegExp(`^velobase-billing: TLS_CLIENT_CA_FILE ${caFile} holds no PEM certificate: ERR_\\w+\\n$`));
  });
});
