/** Apart from sdk.ts, so that main can shut tracing down without loading the SDK itself. */

interface RunningSdk {
  shutdown(): Promise<void>;
}

/** The SDK this process started: its tracer provider is process-wide, and main stops it on exit. */
let running: RunningSdk | null = null;

export function keepForShutdown(sdk: RunningSdk): void {
  running = sdk;
}

/**
 * Exports the spans the batch still holds and stops the SDK, waiting at most `timeoutMs`: an
 * unreachable collector must not hold the process's exit. Nothing to do when tracing is off.
 */
export async function shutdownTelemetry(timeoutMs: number): Promise<void> {
  const sdk = running;
  running = null;
  if (sdk === null) return;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  try {
    await Promise.race([sdk.shutdown(), expired]);
  } finally {
    clearTimeout(timer);
  }
}
