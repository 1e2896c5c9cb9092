import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

/** How deep messages may nest inside a request; ts-proto's decoder stops at the same depth. */
const MESSAGE_DEPTH_MAX = 100;

/** Why a request's bytes were refused: `field` is the request's top-level field, or "request". */
export class WireError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** The entries of a request's top-level map<string, string> fields, in the order sent, by field. */
export type MapEntries = Map<DescField, Array<[string, string]>>;

// Decoding protobuf strings replaces invalid UTF-8 with U+FFFD; this decoder refuses it instead.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function malformed(): WireError {
  return new WireError("request", "The request is not a valid protobuf message.");
}

function readString(reader: BinaryReader, field: string): string {
  const bytes = reader.bytes();
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new WireError(field, `${field} is not valid UTF-8.`);
  }
}

/** The end offset of the length-delimited value at the reader, which must lie inside `end`. */
function delimitedEnd(reader: BinaryReader, end: number): number {
  const length = reader.uint32();
  const valueEnd = reader.pos + length;
  if (valueEnd > end) throw malformed();
  return valueEnd;
}

const isString = (scalar: ScalarType | undefined) => scalar === ScalarType.STRING;

function readMapEntry(
  reader: BinaryReader,
  end: number,
  field: DescField & { fieldKind: "map" },
  top: string,
  depth: number,
): [string, string] {
  const entryEnd = delimitedEnd(reader, end);
  let key = "";
  let value = "";
  while (reader.pos < entryEnd) {
    const [number, wireType] = reader.tag();
    if (wireType === WireType.LengthDelimited && number === 1 && isString(field.mapKey)) key = readString(reader, top);
    else if (wireType === WireType.LengthDelimited && number === 2 && field.mapKind === "scalar" && isString(field.scalar)) {
      value = readString(reader, top);
    } else if (wireType === WireType.LengthDelimited && number === 2 && field.mapKind === "message") {
      readMessage(reader, delimitedEnd(reader, entryEnd), field.message, top, depth + 1, null);
    } else reader.skip(wireType, number);
  }
  if (reader.pos !== entryEnd) throw malformed();
  return [key, value];
}

/** The message type of a field that holds messages (singular or repeated), else null. */
function messageOf(field: DescField): DescMessage | null {
  if (field.fieldKind === "message") return field.message;
  if (field.fieldKind === "list" && field.listKind === "message") return field.message;
  return null;
}

function holdsStrings(field: DescField): boolean {
  if (field.fieldKind === "scalar") return isString(field.scalar);
  return field.fieldKind === "list" && field.listKind === "scalar" && isString(field.scalar);
}

/** A message or map being read: where it ends, its top-level field's name, how deep it is. */
interface Reading {
  readonly end: number;
  readonly top: string | null;
  readonly depth: number;
  readonly maps: MapEntries | null;
}

/**
 * Reads one message from `reader.pos` to `end` against its descriptor: every string (nested
 * messages and map entries included) must be valid UTF-8, every tag, length and group well
 * formed. `maps` collects the top-level map<string, string> entries.
 */
function readMessage(
  reader: BinaryReader,
  end: number,
  message: DescMessage,
  top: string | null,
  depth: number,
  maps: MapEntries | null,
): void {
  if (depth > MESSAGE_DEPTH_MAX) throw malformed();
  const reading: Reading = { end, top, depth, maps };
  while (reader.pos < end) {
    const [number, wireType] = reader.tag();
    const field = message.fields.find((f) => f.number === number);
    if (field === undefined || wireType !== WireType.LengthDelimited) reader.skip(wireType, number);
    else readDelimitedField(reader, field, reading);
  }
  if (reader.pos !== end) throw malformed();
}

/** Reads one length-delimited field of a message being read: a string, a message or a map entry. */
function readDelimitedField(reader: BinaryReader, field: DescField, { end, top, depth, maps }: Reading): void {
  const name = top ?? field.name;
  const nested = messageOf(field);
  if (holdsStrings(field)) readString(reader, name);
  else if (nested) readMessage(reader, delimitedEnd(reader, end), nested, name, depth + 1, null);
  else if (field.fieldKind === "map") {
    const entry = readMapEntry(reader, end, field, name, depth);
    if (maps && field.mapKind === "scalar" && isString(field.scalar)) {
      const entries = maps.get(field) ?? [];
      entries.push(entry);
      maps.set(field, entries);
    }
  } else reader.skip(WireType.LengthDelimited, field.number);
}

/**
 * Checks a request's bytes against its descriptor (see readMessage) and returns the entries of
 * its top-level map<string, string> fields exactly as sent; throws WireError.
 */
export function checkWire(bytes: Uint8Array, message: DescMessage): MapEntries {
  const maps: MapEntries = new Map();
  const reader = new BinaryReader(bytes);
  try {
    readMessage(reader, bytes.length, message, null, 1, maps);
  } catch (error) {
    throw error instanceof WireError ? error : malformed();
  }
  return maps;
}
