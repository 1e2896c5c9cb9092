/**
 * The order the stamper gives committed events their positions. Pure.
 *
 * Rows come in id order, which is almost commit order but not quite (on Galera ids step by the
 * node count and two nodes' counters interleave). What readers rely on is each customer's events
 * in their sequence order, so within one stamping round a customer's sequenced events are put in
 * sequence order, in the slots its events already hold. Across rounds nothing needs fixing: a
 * customer's writes commit one after the other (its row lock), so a round sees a prefix of them.
 */
export interface UnstampedEvent {
  readonly id: bigint;
  /** Project and customer, or null for an event of no customer. */
  readonly customerKey: string | null;
  /** The customer's sequence of the event's first entry; null for an event without entries. */
  readonly sequence: bigint | null;
}

/** The ids in the order their positions are given. */
export function stampOrder(rows: readonly UnstampedEvent[]): bigint[] {
  const ordered = [...rows].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const slotsByCustomer = new Map<string, number[]>();
  ordered.forEach((row, slot) => {
    if (row.customerKey === null || row.sequence === null) return;
    const slots = slotsByCustomer.get(row.customerKey) ?? [];
    slots.push(slot);
    slotsByCustomer.set(row.customerKey, slots);
  });
  const result = [...ordered];
  for (const slots of slotsByCustomer.values()) {
    const bySequence = slots.map((slot) => ordered[slot] as UnstampedEvent).sort((a, b) => compare(a.sequence, b.sequence));
    slots.forEach((slot, i) => {
      result[slot] = bySequence[i] as UnstampedEvent;
    });
  }
  return result.map((row) => row.id);
}

const compare = (a: bigint | null, b: bigint | null): number => {
  const x = a ?? 0n;
  const y = b ?? 0n;
  return x < y ? -1 : x > y ? 1 : 0;
};
