import { JSON_DEPTH_MAX } from "../domain/limits.js";
import { BillingError } from "../errors/billing-error.js";
import { notAJsonObject } from "./schema-errors.js";

// The body's bytes must be UTF-8 (an invalid or overlong sequence is refused, never replaced by
// U+FFFD), as gRPC's strings must be.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
// With the u flag a surrogate pair is one code point: this finds lone surrogates only ("\ud800").
const LONE_SURROGATE = /\p{Cs}/u;

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
    const field = fieldOfInvalidUtf8(raw);
    throw invalidField(field, field === "body" ? "The request body is not valid UTF-8." : `${field} is not valid UTF-8.`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw notAJsonObject();
  }
  checkJsonTree(value);
  const found = misreadNumber(text);
  if (found?.kind === "infinite") {
    throw invalidField(found.field, `${found.field} holds a number beyond what a JSON number can be here (about 1.8e308).`);
  }
  if (found?.kind === "inexact") {
    throw invalidField(
      found.field,
      `${found.field} holds an integer beyond 2^53 that a JSON number cannot keep exactly (its last digits would be lost): send it as a string.`,
    );
  }
  if (found !== null) throw new RoundedToInteger(found.field, value);
  return value;
}

/** A body refused because a field's number is a whole one only once parsed: the route names its code (server.ts). */
export class RoundedToInteger extends Error {
  constructor(
    readonly field: string,
    readonly body: unknown,
  ) {
    super(`${field} is not an integer`);
  }
}

/**
 * A number with a fraction (or exponent) might be one whose digits only a double rounds to a whole
 * number, or one beyond a double's range; one of 16 digits or more might be beyond 2^53.
 */
const MAYBE_MISREAD = /\d[.eE]|\d{16}/;
const NUMBER_AT = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/**
 * The first number JSON.parse misreads, and the top-level field it is in: one beyond a double's
 * range, which it reads as Infinity (anywhere, metadata included: no JSON value holds it); in
 * metadata, an integer it cannot hold exactly (an order id of 20 digits would be stored with its
 * last digits changed); elsewhere, one that is not whole but that it turns into a whole one
 * (`2.9999999999999999` is 3 as a double), which schemas would take for the integer it is not.
 * `1.0` and `1e2` are whole, and pass. One pass over the text, following the field as it goes (a
 * body of such numbers costs its length, not its square).
 */
function misreadNumber(text: string): { field: string; kind: "infinite" | "inexact" | "rounded" } | null {
  if (!MAYBE_MISREAD.test(text)) return null;
  const fields = new TopLevelFields(text);
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '"') {
      i = fields.string(i);
      continue;
    }
    NUMBER_AT.lastIndex = i;
    const literal = NUMBER_AT.exec(text)?.[0];
    if (literal === undefined) {
      fields.char(i);
      continue;
    }
    const read = Number(literal);
    if (!Number.isFinite(read)) return { field: fields.current, kind: "infinite" };
    const inMetadata = fields.current === "metadata";
    if (inMetadata && !Number.isSafeInteger(read) && isWholeDecimal(literal) && !heldExactly(literal, read)) {
      return { field: fields.current, kind: "inexact" };
    }
    if (Number.isInteger(read) && !isWholeDecimal(literal) && !inMetadata) return { field: fields.current, kind: "rounded" };
    i += literal.length - 1;
  }
  return null;
}

/** A JSON number's sign, its digits, and where its decimal point falls among them (after the exponent). */
function decimalOf(literal: string): { sign: string; digits: string; point: number } {
  const [, sign = "", whole = "", fraction = "", exponent = "0"] = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(literal) ?? [];
  return { sign, digits: `${whole}${fraction}`, point: whole.length + Number(exponent) };
}

/** Whether a whole JSON number (isWholeDecimal) is exactly the double it reads as. */
function heldExactly(literal: string, read: number): boolean {
  const { sign, digits, point } = decimalOf(literal);
  // Its integer digits: those before the point, padded with zeros when the exponent reaches past them.
  const integer = point >= digits.length ? digits.padEnd(point, "0") : digits.slice(0, Math.max(point, 0));
  return BigInt(`${sign}${integer || "0"}`) === BigInt(read);
}

/** Whether a JSON number's decimal digits are a whole number, exactly. */
function isWholeDecimal(literal: string): boolean {
  const { digits, point } = decimalOf(literal);
  return /^0*$/.test(digits.slice(Math.max(point, 0)));
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
      // A top-level key names its field; an array body's items are no field: still the body.
      pending.push({ value: child, depth: depth + 1, field: depth === 1 && !Array.isArray(value) ? key : field });
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

/** The top-level field holding the body's first byte that is not UTF-8 (as gRPC names it). */
function fieldOfInvalidUtf8(raw: Buffer): string {
  try {
    return topLevelFieldAt(strictUtf8.decode(raw.subarray(0, validUtf8Length(raw))));
  } catch {
    return "body";
  }
}

/** How many leading bytes form whole, valid UTF-8 characters (RFC 3629: no overlong forms, no surrogates). */
export function validUtf8Length(bytes: Uint8Array): number {
  let i = 0;
  for (let length = utf8CharLength(bytes, 0); length > 0; length = utf8CharLength(bytes, i)) i += length;
  return i;
}

/** The length of the valid character at `at`, or 0 (none there, or not a valid one). */
function utf8CharLength(bytes: Uint8Array, at: number): number {
  const lead = bytes[at];
  if (lead === undefined) return 0;
  const length = lengthByLeadByte(lead);
  return length > 0 && at + length <= bytes.length && continuationsValid(bytes, at, length) ? length : 0;
}

/** A character's length by its first byte; 0 for a byte no valid character starts with. */
const lengthByLeadByte = (lead: number): number =>
  lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;

function continuationsValid(bytes: Uint8Array, at: number, length: number): boolean {
  if (length === 1) return true;
  // The second byte's range rules out overlong forms, surrogates and code points past U+10FFFF.
  const [low, high] = SECOND_BYTE_RANGES.get(bytes[at] as number) ?? [0x80, 0xbf];
  const second = bytes[at + 1] as number;
  if (second < low || second > high) return false;
  for (let k = 2; k < length; k++) if (((bytes[at + k] as number) & 0xc0) !== 0x80) return false;
  return true;
}

const SECOND_BYTE_RANGES = new Map<number, readonly [number, number]>([
  [0xe0, [0xa0, 0xbf]],
  [0xed, [0x80, 0x9f]],
  [0xf0, [0x90, 0xbf]],
  [0xf4, [0x80, 0x8f]],
]);

const DEPTH_STEP: Readonly<Record<string, number>> = { "{": 1, "[": 1, "}": -1, "]": -1 };

/**
 * Follows a JSON text (a valid prefix of a body) from its start, told of every string and every
 * other character outside numbers: the top-level field of the object the text so far lies in,
 * "body" when it lies in a key, outside any field, or the body is no object.
 */
class TopLevelFields {
  private readonly isObject: boolean;
  private depth = 0;
  private lastString = "";
  private field: string | null = null;

  constructor(private readonly text: string) {
    this.isObject = text.trimStart().startsWith("{");
  }

  get current(): string {
    return !this.isObject || this.field === null || this.field === "" ? "body" : this.field;
  }

  /** The string whose opening quote is at `at`; returns where it ends (its closing quote). */
  string(at: number): number {
    const end = stringEnd(this.text, at + 1);
    if (this.depth === 1) this.lastString = this.text.slice(at + 1, end);
    return end;
  }

  char(at: number): void {
    const c = this.text[at] as string;
    if (this.depth === 1 && c === ":") this.field = unescapedKey(this.lastString);
    else if (this.depth === 1 && c === ",") this.field = null;
    else this.depth += DEPTH_STEP[c] ?? 0;
  }
}

/** The top-level field the end of this text (a valid prefix of the body) lies in (TopLevelFields). */
export function topLevelFieldAt(prefix: string): string {
  const fields = new TopLevelFields(prefix);
  for (let i = 0; i < prefix.length; i++) {
    if (prefix[i] === '"') i = fields.string(i);
    else fields.char(i);
  }
  return fields.current;
}

/** Where the JSON string starting at `from` (after its quote) ends: its closing quote, or the text's end. */
function stringEnd(text: string, from: number): number {
  for (let j = from; j < text.length; j++) {
    if (text[j] === "\\") j++;
    else if (text[j] === '"') return j;
  }
  return text.length;
}

function unescapedKey(raw: string): string {
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw;
  }
}
