import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, type ServiceError, status } from "@grpc/grpc-js";
import { generate } from "selfsigned";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError, TestClient } from "../support/client.js";
import { startTestServer, type TestServer } from "../support/server.js";

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
