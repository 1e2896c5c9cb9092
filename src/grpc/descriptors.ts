import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createFileRegistry, fromBinary, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type FileDescriptorSet } from "@bufbuild/protobuf/wkt";

/** Written by `npm run gen` (buf build): every .proto of the API with its imports. */
const DESCRIPTORS = fileURLToPath(new URL("../../gen/descriptors.binpb", import.meta.url));

let set: FileDescriptorSet | undefined;
let registry: FileRegistry | undefined;

/** The compiled descriptor set of the API, read once. */
export function descriptorSet(): FileDescriptorSet {
  set ??= fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTORS));
  return set;
}

/** Every message and service of the API, by full name. */
export function descriptorRegistry(): FileRegistry {
  registry ??= createFileRegistry(descriptorSet());
  return registry;
}
