import { create, createFileRegistry, fromBinary, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Client, type ClientDuplexStream, credentials, Metadata, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus, HealthClient, HealthService } from "../../gen/grpc/health/v1/health.js";
import {
  ServerReflectionClient,
  type ServerReflectionRequest,
  ServerReflectionService,
  type ServerReflectionResponse,
} from "../../gen/grpc/reflection/v1/reflection.js";
import {
  ServerReflectionRequest as AlphaRequest,
  ServerReflectionResponse as AlphaResponse,
  ServerReflectionService as AlphaReflectionService,
} from "../../gen/grpc/reflection/v1alpha/reflection.js";
import { AlertServiceService } from "../../gen/velobase/billing/v1/alerts.js";
import { BillingServiceService } from "../../gen/velobase/billing/v1/billing.js";
import { EntitlementServiceService } from "../../gen/velobase/billing/v1/entitlements.js";
import { EventServiceService } from "../../gen/velobase/billing/v1/events.js";
import { SlotServiceService } from "../../gen/velobase/billing/v1/slots.js";
import { startTestServer, type TestServer } from "../support/server.js";

// grpcurl works from reflection alone: it lists the services, then asks for the file declaring a
// symbol and for each file that one imports, until it can describe the method and encode its
// request. This walks the same protocol for every service the server answers (health and
// reflection included), then calls every method it learned of.
const SERVICES = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "velobase.billing.v1.AlertService",
  "velobase.billing.v1.BillingService",
  "velobase.billing.v1.EntitlementService",
  "velobase.billing.v1.EventService",
  "velobase.billing.v1.SlotService",
];

/** Each service's generated definition, by its full name: the methods reflection must describe. */
const DEFINITIONS: Record<string, Record<string, { readonly path: string }>> = {
  "grpc.health.v1.Health": HealthService,
  "grpc.reflection.v1.ServerReflection": ServerReflectionService,
  "grpc.reflection.v1alpha.ServerReflection": AlphaReflectionService,
  "velobase.billing.v1.AlertService": AlertServiceService,
  "velobase.billing.v1.BillingService": BillingServiceService,
  "velobase.billing.v1.EntitlementService": EntitlementServiceService,
  "velobase.billing.v1.EventService": EventServiceService,
  "velobase.billing.v1.SlotService": SlotServiceService,
};

let s: TestServer;
let reflection: InstanceType<typeof ServerReflectionClient>;
let stream: ClientDuplexStream<ServerReflectionRequest, ServerReflectionResponse>;
const answers: ServerReflectionResponse[] = [];
const waiting: Array<(r: ServerReflectionResponse) => void> = [];

beforeAll(async () => {
  s = await startTestServer();
  reflection = new ServerReflectionClient(`127.0.0.1:${s.app.port}`, credentials.createInsecure());
  stream = reflection.serverReflectionInfo();
  stream.on("data", (r: ServerReflectionResponse) => {
    const next = waiting.shift();
    if (next) next(r);
    else answers.push(r);
  });
});
afterAll(async () => {
  stream?.end();
  reflection?.close();
  await s?.stop();
});

/** One request on the open reflection stream, and its answer. */
function ask(messageRequest: ServerReflectionRequest["messageRequest"]): Promise<ServerReflectionResponse> {
  const answer = new Promise<ServerReflectionResponse>((resolve) => {
    const ready = answers.shift();
    if (ready) resolve(ready);
    else waiting.push(resolve);
  });
  stream.write({ host: "", messageRequest });
  return answer;
}

function filesOf(response: ServerReflectionResponse): FileDescriptorProto[] {
  const answer = response.messageResponse;
  if (answer?.$case !== "fileDescriptorResponse") throw new Error(`no file descriptor: ${JSON.stringify(answer)}`);
  expect(answer.value.fileDescriptorProto.length).toBeGreaterThan(0);
  return answer.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

/** What grpcurl does to describe a symbol: its file, then every file imported, transitively. */
async function registryFor(symbol: string): Promise<FileRegistry> {
  const files = new Map<string, FileDescriptorProto>();
  const add = (list: FileDescriptorProto[]) => {
    for (const file of list) files.set(file.name, file);
  };
  add(filesOf(await ask({ $case: "fileContainingSymbol", value: symbol })));
  for (let missing = missingImports(files); missing.length > 0; missing = missingImports(files)) {
    for (const name of missing) add(filesOf(await ask({ $case: "fileByFilename", value: name })));
  }
  // A registry is built in import order: every file after the files it imports.
  const ordered: FileDescriptorProto[] = [];
  const visit = (name: string) => {
    const file = files.get(name);
    if (!file || ordered.includes(file)) return;
    for (const dependency of file.dependency) visit(dependency);
    ordered.push(file);
  };
  for (const name of files.keys()) visit(name);
  return createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
}

const missingImports = (files: Map<string, FileDescriptorProto>): string[] =>
  [...new Set([...files.values()].flatMap((f) => f.dependency))].filter((name) => !files.has(name));

describe("server reflection (what grpcurl uses)", () => {
  it("lists exactly the services the server answers, over v1 and v1alpha", async () => {
    const listed = await ask({ $case: "listServices", value: "" });
    if (listed.messageResponse?.$case !== "listServicesResponse") throw new Error("no service list");
    expect(listed.messageResponse.value.service.map((x) => x.name).sort()).toEqual(SERVICES);

    const client = new Client(`127.0.0.1:${s.app.port}`, credentials.createInsecure());
    try {
      const alpha = client.makeBidiStreamRequest(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        (r: AlphaRequest) => Buffer.from(AlphaRequest.encode(r).finish()),
        (bytes: Buffer) => AlphaResponse.decode(bytes),
      );
      const names = new Promise<string[]>((resolve, reject) => {
        alpha.on("data", (r: AlphaResponse) => {
          resolve(r.messageResponse?.$case === "listServicesResponse" ? r.messageResponse.value.service.map((x) => x.name) : []);
          alpha.end();
        });
        alpha.on("error", reject);
      });
      alpha.write({ host: "", messageRequest: { $case: "listServices", value: "" } });
      expect((await names).sort()).toEqual(SERVICES);
    } finally {
      client.close();
    }
  });

  it.each(SERVICES)("describes %s and resolves each of its methods, with their request and response types", async (name) => {
    const registry = await registryFor(name);
    const service = registry.getService(name);
    // Exactly the generated definition's methods (its paths are /<service>/<method>).
    const generated = Object.values(DEFINITIONS[name] ?? {}).map((m) => m.path.slice(`/${name}/`.length));
    expect(generated.length).toBeGreaterThan(0);
    expect(service?.methods.map((m) => m.name).sort()).toEqual(generated.sort());
    for (const method of service?.methods ?? []) {
      const methodRegistry = await registryFor(`${name}.${method.name}`);
      expect(methodRegistry.getService(name)?.method[method.localName]?.name).toBe(method.name);
      for (const type of [method.input.typeName, method.output.typeName]) {
        expect((await registryFor(type)).getMessage(type)?.typeName).toBe(type);
      }
    }
  });

  it("answers every method it describes (none is UNIMPLEMENTED)", async () => {
    const client = new Client(`127.0.0.1:${s.app.port}`, credentials.createInsecure());
    const identity = (bytes: Buffer) => bytes;
    /** The status of a call with an empty request, or OK once a streaming one sends a message. */
    const statusOf = (path: string, kind: "unary" | "server" | "bidi") =>
      new Promise<status>((resolve) => {
        if (kind === "unary") {
          client.makeUnaryRequest(path, identity, identity, Buffer.alloc(0), new Metadata(), (error) => resolve(error?.code ?? status.OK));
          return;
        }
        const call =
          kind === "server"
            ? client.makeServerStreamRequest(path, identity, identity, Buffer.alloc(0), new Metadata())
            : client.makeBidiStreamRequest(path, identity, identity, new Metadata());
        call.on("data", () => {
          resolve(status.OK);
          call.cancel();
        });
        call.on("error", (error: { code: status }) => resolve(error.code));
        if (kind === "bidi") {
          const duplex = call as ClientDuplexStream<Buffer, Buffer>;
          duplex.write(Buffer.alloc(0));
          duplex.end();
        }
      });
    try {
      const codes: Record<string, string> = {};
      for (const name of SERVICES) {
        for (const method of (await registryFor(name)).getService(name)?.methods ?? []) {
          const kind = method.methodKind === "unary" ? "unary" : method.methodKind === "server_streaming" ? "server" : "bidi";
          codes[`${name}/${method.name}`] = status[await statusOf(`/${name}/${method.name}`, kind)] ?? "?";
        }
      }
      expect(Object.entries(codes).filter(([, code]) => code === "UNIMPLEMENTED")).toEqual([]);
      // Without a key: health and reflection answer, every API method asks for one.
      expect(codes["grpc.health.v1.Health/Check"]).toBe("OK");
      expect(codes["grpc.health.v1.Health/List"]).toBe("OK");
      expect(codes["velobase.billing.v1.BillingService/Deduct"]).toBe("UNAUTHENTICATED");
      // Exactly the methods of the service definitions the server registers.
      const registered = [
        BillingServiceService,
        SlotServiceService,
        EntitlementServiceService,
        EventServiceService,
        AlertServiceService,
        HealthService,
        ServerReflectionService,
      ]
        .flatMap((definition) => Object.values(definition).map((m) => m.path.slice(1)))
        .concat("grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
      expect(Object.keys(codes).sort()).toEqual(registered.sort());
    } finally {
      client.close();
    }
  });

  it("answers the README's `grpcurl … grpc.health.v1.Health/Check` (an empty request) with SERVING", async () => {
    const health = new HealthClient(`127.0.0.1:${s.app.port}`, credentials.createInsecure());
    try {
      const check = () =>
        new Promise<HealthCheckResponse_ServingStatus>((resolve, reject) =>
          health.check({ service: "" }, (error, response) => (error ? reject(error) : resolve(response.status))),
        );
      await expect.poll(check, { timeout: 5000 }).toBe(HealthCheckResponse_ServingStatus.SERVING);
    } finally {
      health.close();
    }
  });
});
