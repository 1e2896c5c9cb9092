import { readFileSync } from "node:fs";
import { ServerCredentials } from "@grpc/grpc-js";

export type TransportSecurity = "plaintext" | "tls" | "mtls";

export interface TlsFiles {
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /** Clients must present a certificate signed by this CA (mutual TLS). */
  readonly clientCaFile?: string | undefined;
}

/** Thrown when a TLS file cannot be read; main prints it as one line. */
export class TlsFileError extends Error {}

function read(path: string, name: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new TlsFileError(`cannot read ${name} ${path}: ${(error as NodeJS.ErrnoException).code ?? "unreadable"}`, { cause: error });
  }
}

/** Server credentials from the configured files: plaintext without them, TLS, or mutual TLS. */
export function serverCredentials(files: TlsFiles): { credentials: ServerCredentials; security: TransportSecurity } {
  if (files.certFile === undefined || files.keyFile === undefined) {
    return { credentials: ServerCredentials.createInsecure(), security: "plaintext" };
  }
  const pair = { cert_chain: read(files.certFile, "TLS_CERT_FILE"), private_key: read(files.keyFile, "TLS_KEY_FILE") };
  if (files.clientCaFile === undefined) {
    return { credentials: ServerCredentials.createSsl(null, [pair], false), security: "tls" };
  }
  const ca = read(files.clientCaFile, "TLS_CLIENT_CA_FILE");
  return { credentials: ServerCredentials.createSsl(ca, [pair], true), security: "mtls" };
}
