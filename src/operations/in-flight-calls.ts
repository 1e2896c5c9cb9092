import { BillingError } from "../errors/billing-error.js";

/**
 * The calls a transport is answering, each with how to answer it now. When a shutdown's grace
 * runs out, every call still open is answered `service_unavailable` (retryable) before the
 * connections are cut: cut without an answer, its client saw CANCELLED or a reset connection, which
 * a client following the docs takes as a failure, though the call may have committed.
 */
export class InFlightCalls {
  private readonly open = new Set<(error: BillingError) => void>();

  /** Registers a call's answer-now; what it returns forgets the call (once it is answered). */
  add(answerNow: (error: BillingError) => void): () => void {
    this.open.add(answerNow);
    return () => this.open.delete(answerNow);
  }

  /** Answers every open call with `service_unavailable`; how many there were. */
  cutAll(): number {
    const open = [...this.open];
    this.open.clear();
    const error = new BillingError(
      "service_unavailable",
      "The server shut down before this call finished; it may have committed: send it again with the same idempotency key.",
    );
    for (const answerNow of open) answerNow(error);
    return open.length;
  }
}
