import { toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { Server } from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { descriptorSet } from "./descriptors.js";

/**
 * Server reflection from the compiled descriptor set, so the server ships no .proto files. The
 * set holds every service the server answers: ours, and the health and reflection services
 * (their protos are vendored in third_party/grpc), so grpcurl can resolve all of them.
 * @grpc/reflection reads only `fileDescriptorProtos` of each entry of a proto-loader package
 * definition; one entry carrying all files is enough.
 */
export function addReflection(server: Server): void {
  const fileDescriptorProtos = descriptorSet().file.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file)));
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
