import type { ServerUnaryCall } from "@grpc/grpc-js";

/** What of a server call its signal watches (every kind of grpc-js server call has it). */
export type WatchedCall = Pick<ServerUnaryCall<unknown, unknown>, "getDeadline" | "cancelled" | "on" | "off">;

/** setTimeout fires at once for a delay beyond a signed 32-bit number of milliseconds. */
const TIMER_DELAY_MAX_MS = 2 ** 31 - 1;
/**
 * A cancel this close to the deadline is the deadline: the client's own timer, which starts before
 * the request travels, cancels the call (RST_STREAM) a transit time before the server's would fire.
 */
const DEADLINE_CANCEL_SLACK_MS = 1000;

/** A call's AbortSignal, and the way to stop watching the call once it is answered. */
export interface CallSignal {
  readonly signal: AbortSignal;
  /** Clears the deadline timer and the cancel listener (the call has its answer). */
  release(): void;
  /** Aborts it for the server's own reason (a shutdown that answered the call already). */
  abort(reason: Error): void;
}

/** The call's deadline as epoch milliseconds; Infinity when the client set none. */
function deadlineMsOf(call: WatchedCall): number {
  const deadline = call.getDeadline();
  return deadline instanceof Date ? deadline.getTime() : deadline;
}

/**
 * A signal that aborts when the call's deadline passes (reason: a `TimeoutError` DOMException)
 * or the client cancels it (an `AbortError`), so that the operation does not start work whose
 * answer nobody will read. grpc-js answers DEADLINE_EXCEEDED or CANCELLED to the client itself.
 */
export function callSignal(call: WatchedCall, nowMs: () => number = Date.now): CallSignal {
  const controller = new AbortController();
  const deadlineMs = deadlineMsOf(call);
  const deadlinePassed = () => controller.abort(new DOMException("The call's deadline passed.", "TimeoutError"));
  // A call whose deadline passes is cancelled by the client's timer or ended by grpc-js's, either
  // of which may reach us before our own timer does.
  const onCancelled = () =>
    deadlineMs - nowMs() <= DEADLINE_CANCEL_SLACK_MS
      ? deadlinePassed()
      : controller.abort(new DOMException("The client cancelled the call.", "AbortError"));
  let timer: NodeJS.Timeout | undefined;
  const release = () => {
    clearTimeout(timer);
    call.off("cancelled", onCancelled);
  };
  const leftMs = deadlineMs - nowMs();
  if (call.cancelled) onCancelled();
  else if (leftMs <= 0) deadlinePassed();
  else {
    call.on("cancelled", onCancelled);
    if (leftMs <= TIMER_DELAY_MAX_MS) {
      timer = setTimeout(deadlinePassed, leftMs);
      timer.unref();
    }
  }
  return { signal: controller.signal, release, abort: (reason) => controller.abort(reason) };
}

/** Whether a call's signal aborted because its client cancelled it (not because its deadline passed). */
export const cancelledByClient = (signal: AbortSignal): boolean =>
  signal.aborted && signal.reason instanceof DOMException && signal.reason.name === "AbortError";
