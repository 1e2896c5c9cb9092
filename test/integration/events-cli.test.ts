import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commitEvents, testEvent } from "../support/events.js";
import { collect, ROOT, waitForOutput } from "../support/spawn.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { HttpTestClient, ok } from "../support/http.js";
import { pruneExpiredEvents } from "../../src/operations/events/retention.js";
import { eventTagOf } from "../../src/domain/events.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

const tail = (...args: string[]) =>
  spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "events", "tail", ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: s.databaseUrl },
    stdio: ["ignore", "pipe", "pipe"],
  });

describe("events tail", () => {
  it("prints the kept events as JSON lines, follows new ones, and stops on SIGINT", async () => {
    const project = await s.createProject({ name: "tail-shop" });
    const before = testEvent(s.app, { customerId: "tail-1", type: "ledger.deposit", projectId: project.id, transactionId: "a" });
    await commitEvents(s.app, [before, testEvent(s.app, { customerId: "tail-2", type: "ledger.deposit", projectId: project.id })]);
    const child = tail("--project", "tail-shop", "--customer", "tail-1");
    const { output, exited } = collect(child);
    await waitForOutput(() => output().stdout, before.eventId);
    const after = testEvent(s.app, { customerId: "tail-1", type: "ledger.deduct", projectId: project.id, transactionId: "b" });
    await commitEvents(s.app, [after]);
    await waitForOutput(() => output().stdout, after.eventId);
    child.kill("SIGINT");
    const exit = await exited;
    expect(exit.code).toBe(0);
    const lines = exit.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.id, l.type, l.customer_id, l.transaction_id, l.project_id])).toEqual([
      [before.eventId, "ledger.deposit", "tail-1", "a", project.id.toString()],
      [after.eventId, "ledger.deduct", "tail-1", "b", project.id.toString()],
    ]);
  });

  it("stops with exit code 0 and nothing on stderr when its reader closes the pipe (| head -1)", async () => {
    await commitEvents(
      s.app,
      [1, 2, 3].map(() => testEvent(s.app, { customerId: "tail-head", type: "ledger.deposit" })),
    );
    const child = tail("--customer", "tail-head");
    const { output, exited } = collect(child);
    await waitForOutput(() => output().stdout, "tail-head");
    child.stdout.destroy();
    await commitEvents(s.app, [testEvent(s.app, { customerId: "tail-head", type: "ledger.deduct" })]);
    const exit = await exited;
    expect(exit.code).toBe(0);
    expect(exit.stderr).toBe("");
  });

  it("refuses a malformed cursor and a pruned one with one line each and exit code 2", async () => {
    const malformed = await collect(tail("--cursor", "not-a-cursor")).exited;
    expect(malformed).toMatchObject({ code: 2, stdout: "" });
    expect(malformed.stderr).toBe("velobase-billing: cursor is not an event cursor. (invalid_page_token)\n");
    // Two old events: the first's cursor is behind the prune mark the second leaves.
    await commitEvents(
      s.app,
      [1, 2].map(() => testEvent(s.app, { customerId: "tail-pruned", type: "ledger.deposit" })),
    );
    const http = new HttpTestClient(s.httpUrl, s.apiKey);
    let first: string | undefined;
    while (first === undefined) {
      first = ok<{ items: { cursor: string }[] }>(await http.get("/v1/events?customer_id=tail-pruned")).items[0]?.cursor;
      if (first === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    s.clock.advance(2 * 3_600_000);
    await commitEvents(s.app, [testEvent(s.app, { customerId: "tail-pruned", type: "ledger.deposit" })]);
    await pruneExpiredEvents(s.app.context, { retentionMs: 3_600_000, awaitPublisher: false });
    const pruned = await collect(tail("--project", "default", "--cursor", first)).exited;
    expect(pruned).toMatchObject({
      code: 2,
      stdout: "",
      stderr: "velobase-billing: The events after this cursor were pruned; start again from an empty cursor. (cursor_expired)\n",
    });
  });

  it("prints the cursors of the feed of every project apart from a project's, and takes each only where it belongs", async () => {
    const project = await s.createProject({ name: "tail-spaces" });
    const event = testEvent(s.app, { customerId: "tail-space", type: "ledger.deposit", projectId: project.id });
    await commitEvents(s.app, [event]);
    const cursorIn = async (...args: string[]) => {
      const child = tail(...args, "--customer", "tail-space");
      const { output, exited } = collect(child);
      await waitForOutput(() => output().stdout, event.eventId);
      child.kill("SIGINT");
      return (JSON.parse((await exited).stdout.trim().split("\n")[0] ?? "{}") as { cursor: string }).cursor;
    };
    const everyProject = await cursorIn();
    const oneProject = await cursorIn("--project", "tail-spaces");
    expect([everyProject.startsWith("evall1."), oneProject]).toEqual([true, `ev1.1.${eventTagOf(event.eventId)}`]);
    const crossed = await collect(tail("--project", "tail-spaces", "--cursor", everyProject)).exited;
    expect(crossed).toMatchObject({
      code: 2,
      stdout: "",
      stderr:
        "velobase-billing: cursor is from the feed of every project (events tail without --project), not from one project's. (invalid_page_token)\n",
    });
    // And the other way round, saying which option takes it.
    expect(await collect(tail("--cursor", oneProject)).exited).toMatchObject({
      code: 2,
      stdout: "",
      stderr:
        "velobase-billing: cursor is from one project's feed (events tail --project NAME takes it); the feed of every project numbers its events apart. (invalid_page_token)\n",
    });
  });

  it("refuses an unknown project with one line and exit code 2", async () => {
    const exit = await collect(tail("--project", "no-such-project")).exited;
    expect(exit).toMatchObject({ code: 2, stdout: "", stderr: 'velobase-billing: no project named "no-such-project"\n' });
  });
});
