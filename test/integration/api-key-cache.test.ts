import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/domain/api-key.js";
import { Authenticator, UNKNOWN_KEY_CACHE_TTL_MS_MAX } from "../../src/tenancy/authenticator.js";
import { storeApiKey } from "../../src/tenancy/api-keys.js";
import { projectNamed } from "../../src/tenancy/projects.js";
import { codeOf } from "../support/code-of.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Unknown keys are cached too (bounded, briefly), apart from known ones: a flood of made-up keys
// neither queries the database per call nor pushes a real key out. A key stored in the database
// after the look-up shows which answers came from the cache.
let s: TestServer;
let nowMs = 1_000_000;

beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => s?.stop());

const authenticator = (bounds: { known?: number; unknown?: number } = {}) =>
  new Authenticator(s.app.database, {
    cacheTtlMs: 5_000,
    log: pino({ level: "silent" }),
    now: () => nowMs,
    ...(bounds.known === undefined ? {} : { knownEntriesMax: bounds.known }),
    ...(bounds.unknown === undefined ? {} : { unknownEntriesMax: bounds.unknown }),
  });

async function store(key: string): Promise<void> {
  await storeApiKey(s.app.database, await projectNamed(s.app.database, "default"), key, {
    label: "cache",
    scope: "write",
    nowMs: Date.now(),
  });
}

const outcome = (auth: Authenticator, key: string) =>
  auth.authenticate(key).then(
    () => "ok",
    (error: unknown) =>
      codeOf(() => {
        throw error;
      }),
  );

describe("the cache of unknown keys", () => {
  it(`answers an unknown key from memory for ${UNKNOWN_KEY_CACHE_TTL_MS_MAX} ms, then asks the database again`, async () => {
    const auth = authenticator();
    const key = generateApiKey("test");
    expect(await outcome(auth, key)).toBe("invalid_api_key");
    await store(key);
    expect(await outcome(auth, key)).toBe("invalid_api_key"); // remembered: no look-up
    nowMs += UNKNOWN_KEY_CACHE_TTL_MS_MAX - 1;
    expect(await outcome(auth, key)).toBe("invalid_api_key");
    nowMs += 1;
    expect(await outcome(auth, key)).toBe("ok");
  });

  it("is bounded: the oldest unknown keys are forgotten first", async () => {
    const auth = authenticator({ unknown: 5 });
    const keys = Array.from({ length: 8 }, () => generateApiKey("test"));
    for (const key of keys) expect(await outcome(auth, key)).toBe("invalid_api_key");
    for (const key of keys) await store(key);
    const answers = [];
    for (const key of keys) answers.push(await outcome(auth, key));
    // The first three were pushed out (looked up again: now stored); the last five are remembered.
    expect(answers).toEqual([
      "ok",
      "ok",
      "ok",
      "invalid_api_key",
      "invalid_api_key",
      "invalid_api_key",
      "invalid_api_key",
      "invalid_api_key",
    ]);
  });

  it("never pushes a known key out: a flood of made-up keys leaves it cached", async () => {
    const auth = authenticator({ known: 2, unknown: 2 });
    const known = (await s.createKey()).key;
    expect(await outcome(auth, known)).toBe("ok");
    await s.revokeKey(known.slice(0, 16));
    for (let i = 0; i < 50; i += 1) expect(await outcome(auth, generateApiKey("test"))).toBe("invalid_api_key");
    // Still the cached record: the revoke is seen only once the known-key cache expires.
    expect(await outcome(auth, known)).toBe("ok");
    nowMs += 5_000;
    expect(await outcome(auth, known)).toBe("api_key_revoked");
  });
});
