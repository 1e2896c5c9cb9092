import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
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

/** The configured files' contents, read once and served by both listeners; null without them. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Set under mutual TLS. */
  readonly clientCa: Buffer | null;
}

/**
 * The files, read and checked before anything listens: a certificate with its own key, and a CA
 * file that holds a certificate (one without any would refuse every client).
 */
export function readTlsFiles(files: TlsFiles): TlsMaterial | null {
  if (files.certFile === undefined || files.keyFile === undefined) return null;
  const material = {
    cert: read(files.certFile, "TLS_CERT_FILE"),
    key: read(files.keyFile, "TLS_KEY_FILE"),
    clientCa: files.clientCaFile === undefined ? null : read(files.clientCaFile, "TLS_CLIENT_CA_FILE"),
  };
  try {
    createSecureContext({ cert: material.cert, key: material.key });
  } catch (error) {
    throw new TlsFileError(`TLS_CERT_FILE and TLS_KEY_FILE are not a PEM certificate and its private key: ${reasonOf(error)}`, {
      cause: error,
    });
  }
  if (material.clientCa !== null) {
    try {
      new X509Certificate(material.clientCa);
    } catch (error) {
      throw new TlsFileError(`TLS_CLIENT_CA_FILE ${files.clientCaFile} holds no PEM certificate: ${reasonOf(error)}`, { cause: error });
    }
  }
  return material;
}

/** OpenSSL's code for what is wrong (ERR_OSSL_X509_KEY_VALUES_MISMATCH), else its first line. */
const reasonOf = (error: unknown): string =>
  (error as { code?: unknown }).code?.toString() ?? (error instanceof Error ? (error.message.split("\n")[0] ?? "") : "invalid");

export function securityOf(material: TlsMaterial | null): TransportSecurity {
  if (material === null) return "plaintext";
  return material.clientCa === null ? "tls" : "mtls";
}

/** Server credentials from the configured files: plaintext without them, TLS, or mutual TLS. */
export function serverCredentials(material: TlsMaterial | null): { credentials: ServerCredentials; security: TransportSecurity } {
  const security = securityOf(material);
  if (material === null) return { credentials: ServerCredentials.createInsecure(), security };
  const pair = { cert_chain: material.cert, private_key: material.key };
  return { credentials: ServerCredentials.createSsl(material.clientCa, [pair], material.clientCa !== null), security };
}
