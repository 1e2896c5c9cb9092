/** What a key may do: `write` every RPC, `read` only the reads. */
export type Scope = "read" | "write";

export const SCOPES: readonly Scope[] = ["read", "write"];

/**
 * Who is calling, once authenticated: every operation runs in the caller's project and records
 * its key for audit. apiKeyId and keyPrefix are null only for work the service does itself
 * (the sweeper, expiry).
 */
export interface Caller {
  readonly projectId: bigint;
  readonly apiKeyId: bigint | null;
  readonly scope: Scope;
  readonly keyPrefix: string | null;
  /** The call's x-request-id, set by the transport; stored with the transactions it makes. */
  readonly requestId?: string;
}

/**
 * Who made a call, as its log line says it: the key's prefix (never the key) and its project, so an
 * operator can find what one key did, a leaked one say. Nothing for a call no key was admitted for.
 */
export const callerOnLine = (caller: Caller | null | undefined): { keyPrefix?: string; projectId?: string } =>
  caller?.keyPrefix ? { keyPrefix: caller.keyPrefix, projectId: caller.projectId.toString() } : {};

/** Whether a key of scope `held` may call a method that requires `required`. */
export const scopeAllows = (held: Scope, required: Scope): boolean => held === "write" || required === "read";

/** What a write records of its caller: the project it runs in and the key, for audit. */
export const auditOf = (caller: Caller): Audit => ({
  projectId: caller.projectId,
  apiKeyId: caller.apiKeyId,
});

/** The request id a Deduct or Freeze stores with its transaction (absent when the transport has none). */
export const requestIdOf = (caller: Caller): { requestId?: string } =>
  caller.requestId === undefined ? {} : { requestId: caller.requestId };

export interface Audit {
  readonly projectId: bigint;
  readonly apiKeyId: bigint | null;
}
