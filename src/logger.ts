import { isSpanContextValid, trace } from "@opentelemetry/api";
import { pino, type DestinationStream, type LevelWithSilentOrString, type Logger } from "pino";
import { driverError } from "./store/sql-errors.js";

/** A log line is cut beyond this: one runaway field must not turn into megabytes of log. */
export const LOG_LINE_BYTES_MAX = 16 * 1024;
/** A failed SQL statement is logged without its values, up to this many characters. */
export const LOGGED_SQL_LENGTH_MAX = 512;
/** An error message is logged up to this many characters (with its quoted parts removed). */
export const LOGGED_MESSAGE_LENGTH_MAX = 512;
/** Stack frames kept per error, and causes followed. */
const STACK_FRAMES_MAX = 20;
const CAUSE_DEPTH_MAX = 3;

/** The index just after the quoted literal starting at `start` (backslash and doubled quotes escape). */
function endOfQuoted(text: string, start: number): number {
  const quote = text[start];
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === quote) {
      if (text[i + 1] !== quote) return i + 1;
      i++;
    }
  }
  return text.length;
}

const WORD = /[A-Za-z0-9_$]/;
const DIGIT = /[0-9]/;

/** A piece of text as logged (`text`), and the index just after it in the original (`end`). */
interface Token {
  readonly text: string;
  readonly end: number;
}

/** The index just after the number (or the word that starts with digits) starting at `start`. */
function endOfNumber(sql: string, start: number): number {
  let end = start;
  while (end < sql.length && (WORD.test(sql[end] ?? "") || sql[end] === ".")) end++;
  return end;
}

/** The statement's token at `i`: a literal (quoted string, number) as `?`, anything else as written. */
function statementToken(sql: string, i: number): Token {
  const c = sql[i] ?? "";
  if (c === "'" || c === '"') return { text: "?", end: endOfQuoted(sql, i) };
  if (c === "`") {
    const end = endOfQuoted(sql, i);
    return { text: sql.slice(i, end), end };
  }
  if (DIGIT.test(c) && !WORD.test(sql[i - 1] ?? "")) return { text: "?", end: endOfNumber(sql, i) };
  return { text: c, end: i + 1 };
}

/** The index of the quote that closes the one at `start`: the same quote before a non-word character. */
function closingQuote(message: string, start: number): number {
  const quote = message[start];
  let end = start + 1;
  while (end < message.length && !(message[end] === quote && !WORD.test(message[end + 1] ?? ""))) end++;
  return end;
}

/** The message's token at `i`: a quoted part (opened after a non-word character) as `'?'`. */
function messageToken(message: string, i: number): Token {
  const c = message[i] ?? "";
  if ((c === "'" || c === '"') && !WORD.test(message[i - 1] ?? "")) return { text: "'?'", end: closingQuote(message, i) + 1 };
  return { text: c, end: i + 1 };
}

/** `text` token by token as logged, cut to `lengthMax` (with `…`); scans no further than the output needs. */
function withoutValues(text: string, lengthMax: number, tokenAt: (text: string, i: number) => Token): string {
  let out = "";
  let i = 0;
  while (i < text.length && out.length < lengthMax) {
    const token = tokenAt(text, i);
    out += token.text;
    i = token.end;
  }
  return i < text.length || out.length > lengthMax ? `${out.slice(0, lengthMax)}…` : out;
}

/**
 * A statement with every literal (quoted strings, numbers) replaced by `?`, cut to `lengthMax`:
 * mysql2 puts the statement with its values filled in on its errors, and those values are
 * customer data. Backquoted identifiers are kept.
 */
export function statementWithoutValues(sql: string, lengthMax = LOGGED_SQL_LENGTH_MAX): string {
  return withoutValues(sql, lengthMax, statementToken);
}

const DRIZZLE_FAILED_QUERY = "Failed query";

/**
 * A message with its quoted parts removed: MySQL quotes the offending value ("Duplicate entry
 * '…' for key …") without escaping the quotes inside it, so a quote opens after a non-word
 * character and closes before one; an apostrophe inside a word ("doesn't") is text. Drizzle's
 * message (`Failed query: <statement> params: <values>`, unquoted, over several lines) is reduced
 * to its first words. The one masking of messages, with errorMessageShown: the logs' and the
 * traces' (outgoing-spans.ts).
 */
export function messageWithoutValues(message: string): string {
  if (message.startsWith(DRIZZLE_FAILED_QUERY)) return DRIZZLE_FAILED_QUERY;
  return withoutValues(message, LOGGED_MESSAGE_LENGTH_MAX, messageToken);
}

/**
 * The runtime's errors that may name the value they could not convert, unquoted:
 * `BigInt("card-4111")` throws SyntaxError "Cannot convert card-4111 to a BigInt", `BigInt(1.5)`
 * RangeError "The number 1.5 cannot be converted…". Their type and frames find the line; their
 * message may be customer data.
 */
const VALUE_QUOTING_ERRORS: ReadonlySet<string> = new Set(["SyntaxError", "RangeError"]);
const VALUE_WITHHELD = "(message withheld: it may quote a value)";

/** An error's message as the logs and the traces show it: withheld for the runtime's conversion errors, else without its quoted parts. */
/**
 * The servers of a URL (or of a comma-separated list of them, as NATS_URL may be) as `host:port`,
 * for a log line that says which server failed, without the URL's user and password.
 */
export function serversForLog(url: string, defaultPort: number): string {
  return url
    .split(",")
    .map((server) => {
      try {
        const parsed = new URL(server.includes("://") ? server : `tcp://${server}`);
        return `${parsed.hostname}:${parsed.port || defaultPort}`;
      } catch {
        return "(unparsable)";
      }
    })
    .join(",");
}

export const errorMessageShown = (type: string | undefined, message: string): string =>
  type !== undefined && VALUE_QUOTING_ERRORS.has(type) ? VALUE_WITHHELD : messageWithoutValues(message);

export interface LoggedError {
  readonly type: string;
  // Absent fields are undefined, which JSON lines leave out.
  readonly message?: string | undefined;
  readonly stack?: string | undefined;
  readonly code?: string | undefined;
  readonly errno?: number | undefined;
  readonly sqlState?: string | undefined;
  readonly sql?: string | undefined;
  readonly cause?: LoggedError | undefined;
}

function ownField(error: Error, key: string): unknown {
  return (error as unknown as Record<string, unknown>)[key];
}

function stringField(error: Error, key: string): string | undefined {
  const value = ownField(error, key);
  return typeof value === "string" ? value : undefined;
}

function numberField(error: Error, key: string): number | undefined {
  const value = ownField(error, key);
  return typeof value === "number" ? value : undefined;
}

/**
 * pino's `err` serializer. Never copies an error's own fields wholesale (mysql2 errors carry the
 * statement with its values, drizzle's carry `params`): the statement is logged without values,
 * the message without its quoted parts, both cut, and the stack is the frames only.
 */
export function serializeError(error: unknown, depth = 0): LoggedError {
  if (!(error instanceof Error)) return { type: typeof error };
  const statement = stringField(error, "sql") ?? stringField(error, "query");
  // Drizzle's message repeats the statement and its params; mysql2's is the server's message.
  const rawMessage = statement === undefined ? error.message : (stringField(error, "sqlMessage") ?? DRIZZLE_FAILED_QUERY);
  const message = errorMessageShown(error.name, rawMessage);
  const frames = (error.stack ?? "").split("\n").filter((line) => /^\s+at /.test(line));
  return {
    type: error.name,
    message,
    stack: [`${error.name}: ${message}`, ...frames.slice(0, STACK_FRAMES_MAX)].join("\n"),
    code: stringField(error, "code"),
    errno: numberField(error, "errno"),
    sqlState: stringField(error, "sqlState"),
    sql: statement === undefined ? undefined : statementWithoutValues(statement),
    cause: error.cause !== undefined && depth < CAUSE_DEPTH_MAX ? serializeError(error.cause, depth + 1) : undefined,
  };
}

/**
 * Why a call was answered service_unavailable, for its log line: the driver's errno and code of
 * the failure it became (a lock wait timeout, a Galera certification failure, a lost connection),
 * never its message. Undefined for any other answer.
 */
export function unavailableCause(
  error: { code: string; cause?: unknown } | null,
): { errno?: number | undefined; code?: string | undefined; fatal?: true } | undefined {
  if (error?.code !== "service_unavailable") return undefined;
  const found = driverError(error.cause);
  if (!found) return undefined;
  // mysql2's "connection in closed state" carries neither, only `fatal`: the connection was lost.
  return found.errno === undefined && found.code === undefined ? { fatal: true } : { errno: found.errno, code: found.code };
}

/** A line over LOG_LINE_BYTES_MAX becomes a short valid JSON line saying so, with its start. */
export function capLine(line: string): string {
  if (line.length * 3 <= LOG_LINE_BYTES_MAX || Buffer.byteLength(line) <= LOG_LINE_BYTES_MAX) return line;
  const start = /^\{"level":(\d+),"time":(\d+)/.exec(line);
  const make = (head: string) =>
    `${JSON.stringify({
      level: start ? Number(start[1]) : 50,
      time: start ? Number(start[2]) : Date.now(),
      msg: `log line of ${Buffer.byteLength(line)} bytes cut at ${LOG_LINE_BYTES_MAX}`,
      head,
    })}\n`;
  let head = line.slice(0, LOG_LINE_BYTES_MAX / 2);
  let capped = make(head);
  while (Buffer.byteLength(capped) > LOG_LINE_BYTES_MAX) {
    head = head.slice(0, Math.floor(head.length / 2));
    capped = make(head);
  }
  return capped;
}

/** The trace and span of the call being served (src/telemetry), on every line logged within it. */
export function traceFields(): { trace_id?: string; span_id?: string } {
  const context = trace.getActiveSpan()?.spanContext();
  return context && isSpanContextValid(context) ? { trace_id: context.traceId, span_id: context.spanId } : {};
}

/** The service's logger: JSON lines (pino), errors serialized without values, lines capped, trace ids. */
export function createLogger(level: LevelWithSilentOrString, destination?: DestinationStream): Logger {
  const options = { level, serializers: { err: serializeError }, hooks: { streamWrite: capLine }, mixin: traceFields };
  return destination ? pino(options, destination) : pino(options);
}
