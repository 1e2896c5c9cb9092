import { describe, expect, it } from "vitest";
import { type BillingError, CallNotRun } from "../../src/errors/billing-error.js";
import { TransactionGate } from "../../src/operations/transaction-gate.js";

/** Work that runs until released, recording that it started. */
function held(started: string[], name: string) {
  let release = () => {};
  const done = new Promise<string>((resolve) => (release = () => resolve(name)));
  return {
    work: () => {
      started.push(name);
      return done;
    },
    release: () => release(),
  };
}

describe("TransactionGate", () => {
  it("runs at most `max` at once, the next in arrival order, refuses past its line, and lets a caller who left go", async () => {
    const refusedLines: string[] = [];
    const gate = new TransactionGate(2, 2, (line) => refusedLines.push(line));
    const started: string[] = [];
    const [a, b, c, d] = ["a", "b", "c", "d"].map((name) => held(started, name)) as [
      ReturnType<typeof held>,
      ReturnType<typeof held>,
      ReturnType<typeof held>,
      ReturnType<typeof held>,
    ];
    const left = new AbortController();
    const runs = [
      gate.run(a.work, undefined),
      gate.run(b.work, undefined),
      gate.run(c.work, left.signal, "p1"),
      gate.run(d.work, undefined, "p2"),
    ];
    const refused = await gate.run(async () => "e", undefined, "p3").catch((e: unknown) => e);
    expect([(refused as BillingError).code, (refused as BillingError).message]).toEqual([
      "rate_limit_exceeded",
      "This instance has 2 writes waiting for a connection; retry later.",
    ]);
    expect([(refused as BillingError).facts.writes_waiting_max, refusedLines]).toEqual([2, ["gate"]]);
    await Promise.resolve();
    expect(started).toEqual(["a", "b"]);
    expect(gate.load()).toEqual({ running: 2, waiting: 2 });

    left.abort();
    await expect(runs[2]).rejects.toBeInstanceOf(CallNotRun);
    expect(gate.load()).toEqual({ running: 2, waiting: 1 });

    a.release();
    await expect(runs[0]).resolves.toBe("a");
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual(["a", "b", "d"]);
    b.release();
    d.release();
    await expect(Promise.all([runs[1], runs[3]])).resolves.toEqual(["b", "d"]);
    expect(gate.load()).toEqual({ running: 0, waiting: 0 });
  });

  it("takes its line in turns by tenant, and refuses a tenant past half the line while another still gets in", async () => {
    const gate = new TransactionGate(1, 6);
    const started: string[] = [];
    const names = ["run", "a1", "a2", "a3", "b1", "a4"];
    const works = names.map((name) => held(started, name));
    const tenants = ["a", "a", "a", "a", "b", "a"];
    const runs = works.map((w, i) => gate.run(w.work, undefined, tenants[i]).catch((e: unknown) => (e as BillingError).code));
    expect(await runs[5]).toBe("rate_limit_exceeded");
    for (const w of works.slice(0, 5)) {
      w.release();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(runs.slice(0, 5));
    expect(started).toEqual(["run", "a1", "b1", "a2", "a3"]);
  });

  it("gives the place back when the work fails, and refuses a caller who had left before it came", async () => {
    const gate = new TransactionGate(1, 1);
    await expect(gate.run(() => Promise.reject(new Error("failed")), undefined)).rejects.toThrow("failed");
    expect(gate.load()).toEqual({ running: 0, waiting: 0 });
    const busy = held([], "busy");
    const running = gate.run(busy.work, undefined);
    const gone = new AbortController();
    gone.abort();
    await expect(gate.run(async () => "never", gone.signal)).rejects.toBeInstanceOf(CallNotRun);
    busy.release();
    await expect(running).resolves.toBe("busy");
  });
});
