/**
 * A customer as every write names it: its project and its public id. The same customer id in
 * two projects is two customers, so the pair is the key; `customerKey` is the one function that
 * turns it into a map key (a project id has no colon, so the key never collides).
 */
export interface CustomerRef {
  readonly projectId: bigint;
  readonly customerId: string;
}

export const customerKey = (ref: CustomerRef): string => `${ref.projectId}:${ref.customerId}`;

/** A hold (a Freeze's transaction) as Consume and Unfreeze name it: its project and transaction id. */
export interface HoldRef {
  readonly projectId: bigint;
  readonly transactionId: string;
}

export const holdKey = (ref: HoldRef): string => `${ref.projectId}:${ref.transactionId}`;
