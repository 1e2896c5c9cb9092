import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import { BillingError } from "../errors/billing-error.js";

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

function checkedDeserializer<Req>(decode: (bytes: Buffer) => Req): (bytes: Buffer) => Req | MalformedRequest {
  return (bytes) => {
    try {
      return decode(bytes);
    } catch {
      return new MalformedRequest("request", "The request is not a valid protobuf message.");
    }
  };
}

/** The service definition with every method's request deserializer checked (see MalformedRequest). */
export function withCheckedRequests<S extends ServiceDefinition>(definition: S): ServiceDefinition {
  const checked: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    checked[name] = { ...method, requestDeserialize: checkedDeserializer(method.requestDeserialize) };
  }
  return checked;
}
