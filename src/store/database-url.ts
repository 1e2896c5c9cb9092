/**
 * DATABASE_URL with one host or several: `mysql://user:pass@h1:p1,h2:p2,h3:p3/db`. WHATWG `URL`
 * rejects a comma-separated authority, so the URL is split here: scheme, credentials, hosts,
 * database, with percent-decoding of the user, password and database name.
 */

export interface DatabaseHost {
  readonly host: string;
  readonly port: number;
}

export interface DatabaseUrl {
  readonly user: string;
  readonly password: string;
  readonly hosts: readonly DatabaseHost[];
  readonly database: string;
}

export class DatabaseUrlError extends Error {}

const DEFAULT_PORT = 3306;
const SHAPE = /^mysql:\/\/(?:([^@/?#]*)@)?([^/?#]*)(?:\/([^?#]*))?(\?[^#]*)?(?:#.*)?$/;
/** The database the service creates and migrates: a name it can write unquoted in any statement. */
const DATABASE_NAME = /^[A-Za-z0-9_]{1,64}$/;

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new DatabaseUrlError(`the ${what} is not valid percent-encoding`);
  }
}

function parseHost(text: string): DatabaseHost {
  // [::1]:3306, host:3306, host
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(text);
  const plain = /^([A-Za-z0-9._-]+)(?::(\d+))?$/.exec(text);
  const match = bracketed ?? plain;
  if (!match?.[1]) throw new DatabaseUrlError(`"${text}" is not a host or host:port`);
  const port = match[2] === undefined ? DEFAULT_PORT : Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DatabaseUrlError(`port of "${text}" is out of range`);
  return { host: match[1], port };
}

/** Parses DATABASE_URL; a DatabaseUrlError says what is wrong without repeating the password. */
export function parseDatabaseUrl(url: string): DatabaseUrl {
  const match = SHAPE.exec(url);
  if (!match) throw new DatabaseUrlError("must be mysql://[user[:password]@]host[:port][,host[:port]...]/database");
  const [, credentials = "", authority = "", path = "", query = ""] = match;
  // Options such as ?ssl=true would be read by no one: refused rather than ignored in silence.
  if (query !== "") throw new DatabaseUrlError("takes no query parameters (the service reads none, e.g. ?ssl)");
  const colon = credentials.indexOf(":");
  const user = decode(colon === -1 ? credentials : credentials.slice(0, colon), "user");
  const password = colon === -1 ? "" : decode(credentials.slice(colon + 1), "password");
  if (authority === "") throw new DatabaseUrlError("names no host");
  const hosts = authority.split(",").map(parseHost);
  const database = decode(path, "database name");
  if (!DATABASE_NAME.test(database)) throw new DatabaseUrlError(`database name must be 1-64 characters of [A-Za-z0-9_], got "${database}"`);
  return { user, password, hosts, database };
}

/** The URL with its password masked, for log lines and error messages. */
export function redactDatabaseUrl(url: string): string {
  try {
    const parsed = parseDatabaseUrl(url);
    const hosts = parsed.hosts.map((h) => `${h.host.includes(":") ? `[${h.host}]` : h.host}:${h.port}`).join(",");
    const credentials = parsed.user === "" ? "" : `${encodeURIComponent(parsed.user)}${parsed.password ? ":***" : ""}@`;
    return `mysql://${credentials}${hosts}/${encodeURIComponent(parsed.database)}`;
  } catch {
    return "<unparseable url>";
  }
}
