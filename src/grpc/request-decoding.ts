import type { DescMessage } from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import { BillingError } from "../errors/billing-error.js";
import { descriptorRegistry } from "./descriptors.js";
import { checkWire, WireError } from "./wire-check.js";

/**
 * What a method's deserializer hands the handler when the request bytes are not a valid
 * message. grpc-js answers a deserializer that throws with a bare INTERNAL before any handler
 * runs, so the deserializer returns this instead and the call wrapper answers invalid_argument.
 */
export class MalformedRequest {
  constructor(
    readonly field: string,
    readonly message: string,
  ) {}

  toError(): BillingError {
    return new BillingError("invalid_argument", this.message, { field: this.field });
  }
}

/**
 * ts-proto's decoder writes map entries with `map[key] = value`, which silently drops a key
 * named `__proto__`; Object.fromEntries defines every key as an own property, as sent.
 */
function keepMapsAsSent(request: unknown, maps: ReturnType<typeof checkWire>): void {
  if (typeof request !== "object" || request === null) throw new Error("a request decoded to a non-object");
  for (const [field, entries] of maps) Object.assign(request, { [field.localName]: Object.fromEntries(entries) });
}

function checkedDeserializer(decode: (bytes: Buffer) => unknown, input: DescMessage): (bytes: Buffer) => unknown {
  return (bytes) => {
    let request: unknown;
    try {
      const maps = checkWire(bytes, input);
      request = decode(bytes);
      keepMapsAsSent(request, maps);
    } catch (error) {
      if (error instanceof WireError) return new MalformedRequest(error.field, error.message);
      return new MalformedRequest("request", "The request is not a valid protobuf message.");
    }
    return request;
  };
}

/** The request type of a method, from the descriptor set; fails at start when they disagree. */
function inputOf(serviceName: string, method: MethodDefinition<unknown, unknown>): DescMessage {
  const service = descriptorRegistry().getService(serviceName);
  const methodName = method.path.split("/").pop();
  const input = service?.methods.find((m) => m.name === methodName)?.input;
  if (!input) throw new Error(`no descriptor for ${method.path}`);
  const empty: unknown = method.requestDeserialize(Buffer.alloc(0));
  for (const field of input.fields) {
    if (field.fieldKind === "map" && !(typeof empty === "object" && empty !== null && field.localName in empty)) {
      throw new Error(`${input.typeName}.${field.name} is not "${field.localName}" in the generated code`);
    }
  }
  return input;
}

/**
 * The service definition with every method's request deserializer checked against the
 * descriptor set: bytes that are not a valid message, or a string field (at any depth) that is
 * not valid UTF-8, reach the handler as a MalformedRequest naming the field.
 */
export function withCheckedRequests(definition: ServiceDefinition, serviceName: string): ServiceDefinition {
  const checked: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const typed: MethodDefinition<unknown, unknown> = method;
    checked[name] = { ...typed, requestDeserialize: checkedDeserializer(typed.requestDeserialize, inputOf(serviceName, typed)) };
  }
  return checked;
}
