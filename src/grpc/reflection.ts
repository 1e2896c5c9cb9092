import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { Server } from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";

/** Written by `npm run gen` (buf build): every .proto of the API with its imports. */
const DESCRIPTORS = fileURLToPath(new URL("../../gen/descriptors.binpb", import.meta.url));

/**
 * Server reflection from the compiled descriptor set, so the server ships no .proto files.
 * @grpc/reflection reads only `fileDescriptorProtos` of each entry of a proto-loader package
 * definition; one entry carrying all files is enough.
 */
export function addReflection(server: Server): void {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTORS));
  const fileDescriptorProtos = set.file.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file)));
  const definition: PackageDefinition = {
    "velobase.billing.v1": {
      format: "Protocol Buffer 3 DescriptorProto",
      type: {},
      fileDescriptorProtos,
      // Message codecs are never called by the reflection service.
      serialize: () => Buffer.alloc(0),
      deserialize: () => ({}),
    },
  };
  new ReflectionService(definition).addToServer(server);
}
