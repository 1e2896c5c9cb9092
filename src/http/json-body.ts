import { JSON_DEPTH_MAX } from "../domain/limits.js";
import { BillingError } from "../errors/billing-error.js";

// The body's bytes must be UTF-8 (an invalid or overlong sequence is refused, never replaced by
// U+FFFD), as gRPC's strings must be.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
// With the u flag a surrogate pair is one code point: this finds lone surrogates only ("\ud800").
const LONE_SURROGATE = /\p{Cs}/u;

export const notAJsonObject = () => new BillingError("invalid_argument", "The request body must be a JSON object.", { field: "body" });

const invalidField = (field: string, message: string) => new BillingError("invalid_argument", message, { field });

/**
 * A JSON request body, parsed as the API takes it: valid UTF-8 and Unicode everywhere (keys
 * included), nested at most JSON_DEPTH_MAX deep. JSON.parse makes every key an own property, so
 * `__proto__` and `constructor` are data like any other key, without any prototype effect.
 * A failure names the top-level field it is in (`body` for the body itself).
 */
export function parseJsonBody(raw: Buffer): unknown {
  let text: string;
  try {
    text = strictUtf8.decode(raw);
  } catch {
    throw invalidField("body", "The request body is not valid UTF-8.");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw notAJsonObject();
  }
  checkJsonTree(value);
  return value;
}

/** Walks the value without recursion: a hostile depth never reaches the call stack. */
function checkJsonTree(body: unknown): void {
  const pending: Array<{ value: unknown; depth: number; field: string }> = [{ value: body, depth: 1, field: "body" }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { value, depth, field } = next;
    if (typeof value === "string") checkText(value, field);
    if (value === null || typeof value !== "object") continue;
    if (depth > JSON_DEPTH_MAX) throw invalidField(field, `${field} is nested deeper than ${JSON_DEPTH_MAX} levels.`);
    for (const [key, child] of Object.entries(value)) {
      checkKey(key, depth, field);
      pending.push({ value: child, depth: depth + 1, field: depth === 1 ? key : field });
    }
  }
}

function checkText(value: string, field: string): void {
  if (LONE_SURROGATE.test(value)) throw invalidField(field, `${field} is not valid Unicode (it holds a lone surrogate).`);
}

function checkKey(key: string, depth: number, field: string): void {
  if (!LONE_SURROGATE.test(key)) return;
  throw depth === 1
    ? invalidField("body", "The request body has a key that is not valid Unicode.")
    : invalidField(field, `${field} has a key that is not valid Unicode.`);
}
