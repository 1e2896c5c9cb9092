import { createHash, randomBytes } from "node:crypto";
import { BillingError } from "../errors/billing-error.js";
import {
  deleteConsoleSession,
  deleteEndedConsoleSessions,
  findConsoleSession,
  insertConsoleSession,
} from "../store/console-sessions-store.js";
import type { Database } from "../store/database.js";
import { runQuery } from "../store/run-transaction.js";
import type { AuthenticatedCaller, Authenticator } from "./authenticator.js";
import type { ClientAddress } from "./client-address.js";

/** Random bytes of a session id: as many as a key's, unguessable. */
const SESSION_ID_BYTES = 32;

const hashOf = (sessionId: string): string => createHash("sha256").update(sessionId).digest("hex");

export interface ConsoleSessionOptions {
  readonly ttlMs: number;
  /** The service's clock (tests pin it). */
  readonly now: () => number;
}

/**
 * Console sign-ins. Signing in with an API key stores a session (the SHA-256 of a random id, the
 * key's id, when it ends); the browser holds the id, never the key. Every request resolves the
 * id back to its key and authenticates that key again through the Authenticator's cache, so a
 * revoked key ends its sessions within API_KEY_CACHE_TTL_MS. Stored in the database, sessions
 * work on every instance that shares the cookie secret.
 */
export class ConsoleSessions {
  constructor(
    private readonly database: Database,
    private readonly authenticator: Authenticator,
    private readonly options: ConsoleSessionOptions,
  ) {}

  /**
   * A new session for a valid key that `admit` lets in (its rate limit), or the key's error
   * (missing_api_key, invalid_api_key, api_key_revoked; rate_limit_exceeded when `client`
   * presented too many unknown keys, or the key is over its rate).
   */
  async signIn(
    presentedKey: string,
    client: ClientAddress,
    admit: (caller: AuthenticatedCaller) => Promise<void>,
  ): Promise<{ sessionId: string; caller: AuthenticatedCaller }> {
    const caller = await this.authenticator.authenticate(presentedKey, client);
    // The key's rate limit, as for any call: each sign-in writes a session row.
    await admit(caller);
    const sessionId = randomBytes(SESSION_ID_BYTES).toString("base64url");
    const nowMs = this.options.now();
    await runQuery(async () => {
      await deleteEndedConsoleSessions(this.database.db, nowMs);
      await insertConsoleSession(this.database.db, {
        idHash: hashOf(sessionId),
        projectId: caller.projectId,
        apiKeyId: caller.apiKeyId,
        nowMs,
        expiresAtMs: nowMs + this.options.ttlMs,
      });
    });
    return { sessionId, caller };
  }

  /**
   * The caller of a live session; null when there is no such session or it has ended (expired,
   * or its key revoked: both remove it).
   */
  async resolve(sessionId: string): Promise<AuthenticatedCaller | null> {
    const idHash = hashOf(sessionId);
    const session = await runQuery(() => findConsoleSession(this.database.db, idHash));
    if (session === null) return null;
    if (session.expiresAtMs <= this.options.now()) {
      await this.signOut(sessionId);
      return null;
    }
    try {
      const caller = await this.authenticator.authenticateHash(session.keyHash);
      return caller.projectId === session.projectId ? caller : null;
    } catch (error) {
      if (!(error instanceof BillingError) || error.spec.type !== "auth_error") throw error;
      await this.signOut(sessionId);
      return null;
    }
  }

  async signOut(sessionId: string): Promise<void> {
    await runQuery(() => deleteConsoleSession(this.database.db, hashOf(sessionId)));
  }
}
