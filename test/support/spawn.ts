import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Starts `src/main.ts` exactly as `npm start` does, as one process (no npm wrapper). */
export function spawnMain(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", "--import", "./src/telemetry/register.ts", "src/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: "info", HTTP_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

export interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function collect(child: ChildProcess): { output: () => { stdout: string; stderr: string }; exited: Promise<Exit> } {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return {
    output: () => ({ stdout, stderr }),
    // "close", not "exit": a process can exit before its last lines are read from the pipes.
    exited: new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr }))),
  };
}

/** Resolves once the output contains `text`. */
export async function waitForOutput(get: () => string, text: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!get().includes(text)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for "${text}" in:\n${get()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
