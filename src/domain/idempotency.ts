/** A write already made under a key: who made it, what it asked, what it answered. */
export interface StoredOutcome {
  readonly customerId: string;
  readonly requestFingerprint: string;
  readonly response: string;
}
