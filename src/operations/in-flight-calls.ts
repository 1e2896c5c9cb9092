import { BillingError } from "../errors/billing-error.js";

/**
 * The calls a transport is answering, each with how to answer it now. When a shutdown's grace
 * runs out, every call still open is answered `service_unavailable` (retryable) before the
 * connections are cut: cut without an answer, its client saw CANCELLED or a reset connection, which
 * a client following the docs takes as a failure, though the call may have committed.
 */
export class InFlightCalls {
  private readonly open = new Set<AnswerNow>();

  /** Registers a call's answer-now; what it returns forgets the call (once it is answered). */
  add(answerNow: AnswerNow): () => void {
    this.open.add(answerNow);
    return () => this.open.delete(answerNow);
  }

  /**
   * Answers every open call with `service_unavailable`; how many got that answer (not those whose
   * answer had begun or whose client had left). One that cannot be answered does not stop the rest.
   */
  cutAll(): number {
    const open = [...this.open];
    this.open.clear();
    const error = new BillingError(
      "service_unavailable",
      "The server shut down before this call finished; it may have committed: send it again with the same idempotency key.",
    );
    let answered = 0;
    for (const answerNow of open) {
      try {
        if (answerNow(error)) answered++;
      } catch {
        // Its stream died under it: nobody is there to answer.
      }
    }
    return answered;
  }
}

/** Answers a call now; false when it could not (its answer had begun, or its client left). */
export type AnswerNow = (error: BillingError) => boolean;

/** After answering the calls a shutdown cuts, how long their answers get to leave before the connections close. */
const CUT_ANSWERS_FLUSH_MS = 100;

/**
 * A transport's grace at shutdown: unless cancelled first (its calls all ended), once `graceMs`
 * passes the open calls are answered (`inFlight`), and once their answers had time to leave,
 * `cutConnections` runs. `answered`: how many were answered so.
 */
export function cutAfterGrace(
  inFlight: InFlightCalls | undefined,
  graceMs: number,
  cutConnections: () => void,
): { answered(): number; cancel(): void } {
  let answered = 0;
  let flush: NodeJS.Timeout | undefined;
  const grace = setTimeout(() => {
    answered = inFlight?.cutAll() ?? 0;
    flush = setTimeout(cutConnections, CUT_ANSWERS_FLUSH_MS);
    flush.unref();
  }, graceMs);
  grace.unref();
  return {
    answered: () => answered,
    cancel: () => {
      clearTimeout(grace);
      clearTimeout(flush);
    },
  };
}
