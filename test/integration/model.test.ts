import type { ServiceError } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Timestamp } from "../../gen/google/protobuf/timestamp.js";
import {
  AccountStatus,
  type Account,
  type AllocationDetail,
  type Balance,
  type ConsumeResponse,
  type DeductResponse,
  type DepositResponse,
  type FreezeResponse,
  type RefundResponse,
  type UnfreezeResponse,
  type VoidDepositResponse,
} from "../../gen/velobase/billing/v1/billing.js";
import { verifyLedger } from "../../src/operations/verify.js";
import { decodeStatusDetails } from "../../src/grpc/status-details.js";
import { ts, uid } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

/**
 * A randomized model test: random sequences of Deposit, Deduct, Freeze, Consume, Unfreeze, Refund,
 * VoidDeposit and clock moves on three customers run against the real server, and every answer (amounts, per-account
 * details in order, balances, error codes and their facts) is compared with an in-memory model
 * of the design's semantics (design.md section 2). The model shares no code with src/.
 * Bursts send several calls at once without waiting, the deposits and spends on one customer,
 * so the server's per-customer group commit applies them together; each answer must still be
 * the sequential model's, in arrival order.
 */

/** MODEL_RUNS=1000 for a longer hunt; MODEL_SEED=<seed> replays the runs of a seed fast-check reported. */
const RUNS = Number(process.env.MODEL_RUNS ?? 60);
const SEED = process.env.MODEL_SEED === undefined ? {} : { seed: Number(process.env.MODEL_SEED) };
const COMMANDS_MAX = 40;
const CUSTOMERS = 3;
/** Fixed instants (seconds after a run starts) that deposits may expire or start at, so keys repeat. */
const ANCHORS_S = [2, 4, 6, 9] as const;

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

// ---------------------------------------------------------------------------------------------
// Abstract commands, as fast-check generates them. Choices that depend on earlier commands (which
// key to reuse, which hold to settle) are indices resolved against the run's history at execution.

type When = { readonly anchor: number } | { readonly aheadMs: number };
type KeyChoice =
  | { readonly mode: "none" }
  | { readonly mode: "new" }
  | { readonly mode: "reuse"; readonly pick: number; readonly exact: boolean };
type Scope = "none" | "own" | "other";
type Target = { readonly from: "frozen" | "hold" | "any" | "repeat"; readonly pick: number } | { readonly from: "unknown" };
type Actual = { readonly mode: "unset" } | { readonly mode: "zero" } | { readonly mode: "delta"; readonly delta: bigint };

interface DepositCmd {
  readonly kind: "deposit";
  readonly customer: number;
  readonly amount: bigint;
  readonly creditType: string;
  readonly source: string;
  readonly startsAt: When | null;
  readonly expiresAt: When | null;
  readonly key: KeyChoice;
}
/** A fixed amount, or one at the edge of what the customer holds now (all types, or the selected ones). */
type SpendAmount = bigint | { readonly edge: "all" | "selected"; readonly plus: bigint };

interface SpendCmd {
  readonly kind: "deduct" | "freeze";
  readonly customer: number;
  readonly amount: SpendAmount;
  readonly creditTypes: string[];
  readonly auto: { readonly action: "unfreeze" | "consume"; readonly seconds: bigint } | null;
  readonly id: KeyChoice;
}
interface ConsumeCmd {
  readonly kind: "consume";
  /** In a burst: the burst's customer, named as the call's customer_id (so the server orders it with the others). */
  readonly burstCustomer?: number;
  readonly target: Target;
  readonly actual: Actual;
  readonly allowOverage: boolean;
  readonly scope: Scope;
}
interface UnfreezeCmd {
  readonly kind: "unfreeze";
  readonly burstCustomer?: number;
  readonly target: Target;
  readonly scope: Scope;
}
/** A refund amount: unset (all that is left), a fixed one, or one at the edge of what is left. */
type ReversalAmount =
  | { readonly mode: "unset" }
  | { readonly mode: "fixed"; readonly value: bigint }
  | { readonly mode: "edge"; readonly plus: bigint };
interface RefundCmd {
  readonly kind: "refund";
  readonly burstCustomer?: number;
  /** "charge": a Deduct or consumed hold; "any": any id sent to Deduct or Freeze. */
  readonly target: { readonly from: "charge" | "any"; readonly pick: number } | { readonly from: "unknown" };
  readonly amount: ReversalAmount;
  readonly scope: Scope;
  readonly key: KeyChoice;
}
interface VoidCmd {
  readonly kind: "void";
  readonly burstCustomer?: number;
  /** A deposit made so far (its record id), or an id no deposit has. */
  readonly record: { readonly pick: number } | "unknown";
  readonly amount: ReversalAmount;
  /** "other": the call names a customer the deposit is not of. */
  readonly scope: "own" | "other";
  readonly key: KeyChoice;
}
interface AdvanceCmd {
  readonly kind: "advance";
  readonly by: { readonly ms: number } | { readonly toAnchor: number };
}
type CallCmd = DepositCmd | SpendCmd | ConsumeCmd | UnfreezeCmd | RefundCmd | VoidCmd;
/** Calls sent together without waiting, deposits and spends all on one customer. */
interface BurstCmd {
  readonly kind: "burst";
  readonly customer: number;
  readonly calls: readonly CallCmd[];
}
type Command = CallCmd | BurstCmd | AdvanceCmd;

const whenArb: fc.Arbitrary<When> = fc.oneof(
  fc.record({ anchor: fc.integer({ min: 0, max: ANCHORS_S.length - 1 }) }),
  fc.record({ aheadMs: fc.integer({ min: 300, max: 8000 }) }),
);
const keyArb: fc.Arbitrary<KeyChoice> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ mode: "new" as const }) },
  { weight: 2, arbitrary: fc.record({ mode: fc.constant("reuse" as const), pick: fc.nat(), exact: fc.boolean() }) },
);
const scopeArb: fc.Arbitrary<Scope> = fc.constantFrom<Scope>("none", "none", "own", "other");
const targetArb = (repeat: boolean): fc.Arbitrary<Target> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.record({ from: fc.constant("frozen" as const), pick: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ from: fc.constant("hold" as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ from: fc.constant("any" as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.constant({ from: "unknown" as const }) },
    { weight: repeat ? 2 : 0, arbitrary: fc.record({ from: fc.constant("repeat" as const), pick: fc.nat() }) },
  );

const depositArb: fc.Arbitrary<DepositCmd> = fc.record({
  kind: fc.constant("deposit" as const),
  customer: fc.integer({ min: 0, max: CUSTOMERS - 1 }),
  amount: fc.bigInt({ min: 1n, max: 800n }),
  // "" is the default credit type and source: it must land in, and fingerprint as, "default".
  creditType: fc.constantFrom("", "default", "promo"),
  source: fc.constantFrom("", "default", "purchase"),
  startsAt: fc.oneof(
    { weight: 6, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.record({ aheadMs: fc.integer({ min: 200, max: 2500 }) }) },
    { weight: 1, arbitrary: fc.record({ anchor: fc.integer({ min: 0, max: 1 }) }) },
  ),
  expiresAt: fc.option(whenArb, { nil: null, freq: 2 }),
  key: fc.oneof({ weight: 1, arbitrary: fc.constant({ mode: "none" as const }) }, { weight: 3, arbitrary: keyArb }),
});

const spendArb: fc.Arbitrary<SpendCmd> = fc.record({
  kind: fc.constantFrom("deduct" as const, "freeze" as const, "freeze" as const),
  // CUSTOMERS itself names a customer no deposit ever creates.
  customer: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: CUSTOMERS - 1 }) },
    { weight: 1, arbitrary: fc.constant(CUSTOMERS) },
  ),
  amount: fc.oneof(
    { weight: 6, arbitrary: fc.bigInt({ min: 1n, max: 60n }) },
    { weight: 2, arbitrary: fc.bigInt({ min: 1n, max: 300n }) },
    {
      weight: 1,
      arbitrary: fc.record({ edge: fc.constantFrom("all" as const, "selected" as const), plus: fc.bigInt({ min: -1n, max: 1n }) }),
    },
  ),
  creditTypes: fc.oneof(
    { weight: 2, arbitrary: fc.constant<string[]>([]) },
    { weight: 1, arbitrary: fc.array(fc.constantFrom("default", "promo", "gift"), { minLength: 1, maxLength: 3 }) },
  ),
  auto: fc.option(
    fc.record({ action: fc.constantFrom("unfreeze" as const, "consume" as const), seconds: fc.bigInt({ min: 1n, max: 100n }) }),
    { nil: null, freq: 4 },
  ),
  id: keyArb,
});

const consumeArb: fc.Arbitrary<ConsumeCmd> = fc.record({
  kind: fc.constant("consume" as const),
  target: targetArb(true),
  actual: fc.oneof(
    { weight: 2, arbitrary: fc.constant({ mode: "unset" as const }) },
    { weight: 1, arbitrary: fc.constant({ mode: "zero" as const }) },
    { weight: 4, arbitrary: fc.record({ mode: fc.constant("delta" as const), delta: fc.bigInt({ min: -80n, max: 80n }) }) },
  ),
  allowOverage: fc.boolean(),
  scope: scopeArb,
});

const unfreezeArb: fc.Arbitrary<UnfreezeCmd> = fc.record({
  kind: fc.constant("unfreeze" as const),
  target: targetArb(false),
  scope: scopeArb,
});

const reversalAmountArb: fc.Arbitrary<ReversalAmount> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ mode: "unset" as const }) },
  { weight: 3, arbitrary: fc.record({ mode: fc.constant("fixed" as const), value: fc.bigInt({ min: 1n, max: 80n }) }) },
  { weight: 1, arbitrary: fc.record({ mode: fc.constant("edge" as const), plus: fc.bigInt({ min: -1n, max: 1n }) }) },
);

const refundArb: fc.Arbitrary<RefundCmd> = fc.record({
  kind: fc.constant("refund" as const),
  target: fc.oneof(
    { weight: 6, arbitrary: fc.record({ from: fc.constant("charge" as const), pick: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ from: fc.constant("any" as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.constant({ from: "unknown" as const }) },
  ),
  amount: reversalAmountArb,
  scope: scopeArb,
  key: keyArb,
});

const voidArb: fc.Arbitrary<VoidCmd> = fc.record({
  kind: fc.constant("void" as const),
  record: fc.oneof({ weight: 8, arbitrary: fc.record({ pick: fc.nat() }) }, { weight: 1, arbitrary: fc.constant("unknown" as const) }),
  amount: reversalAmountArb,
  scope: fc.constantFrom("own" as const, "own" as const, "own" as const, "other" as const),
  key: keyArb,
});

const advanceArb: fc.Arbitrary<AdvanceCmd> = fc.record({
  kind: fc.constant("advance" as const),
  by: fc.oneof(
    { weight: 3, arbitrary: fc.record({ ms: fc.integer({ min: 1, max: 3000 }) }) },
    { weight: 1, arbitrary: fc.record({ toAnchor: fc.integer({ min: 0, max: ANCHORS_S.length - 1 }) }) },
  ),
});

const burstArb: fc.Arbitrary<BurstCmd> = fc
  .tuple(
    fc.integer({ min: 0, max: CUSTOMERS - 1 }),
    fc.array(
      fc.oneof(
        { weight: 2, arbitrary: depositArb },
        { weight: 6, arbitrary: spendArb },
        { weight: 3, arbitrary: consumeArb },
        { weight: 1, arbitrary: unfreezeArb },
        { weight: 2, arbitrary: refundArb },
        { weight: 1, arbitrary: voidArb },
      ),
      { minLength: 2, maxLength: 6 },
    ),
  )
  .map(([customer, calls]) => ({
    kind: "burst" as const,
    customer,
    // Every call names the burst's customer: calls of one customer are serialized by the server
    // (its lock, and group commit's queue), so their arrival order is the order they take effect.
    calls: calls.map((c): CallCmd => {
      if (c.kind === "consume" || c.kind === "unfreeze" || c.kind === "refund" || c.kind === "void")
        return { ...c, burstCustomer: customer };
      return { ...c, customer };
    }),
  }));

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: depositArb },
  { weight: 6, arbitrary: spendArb },
  { weight: 3, arbitrary: consumeArb },
  { weight: 1, arbitrary: unfreezeArb },
  { weight: 3, arbitrary: refundArb },
  { weight: 2, arbitrary: voidArb },
  { weight: 2, arbitrary: advanceArb },
  { weight: 3, arbitrary: burstArb },
);

// ---------------------------------------------------------------------------------------------
// Concrete requests, as sent (and resent verbatim when a command replays an earlier one).

interface DepositReq {
  readonly customerId: string;
  readonly amount: bigint;
  readonly idempotencyKey: string;
  readonly creditType: string;
  readonly source: string;
  readonly startsAtMs: number | null;
  readonly expiresAtMs: number | null;
}
interface SpendReq {
  readonly kind: "deduct" | "freeze";
  readonly customerId: string;
  readonly transactionId: string;
  readonly amount: bigint;
  readonly creditTypes: readonly string[];
  readonly auto: SpendCmd["auto"];
}
interface ConsumeReq {
  readonly transactionId: string;
  readonly customerId: string;
  readonly actualAmount: bigint | undefined;
  readonly allowOverage: boolean;
}
interface UnfreezeReq {
  readonly transactionId: string;
  readonly customerId: string;
}
interface RefundReq {
  readonly transactionId: string;
  readonly refundId: string;
  readonly customerId: string;
  readonly amount: bigint | undefined;
}
interface VoidReq {
  readonly customerId: string;
  readonly recordId: string;
  readonly voidId: string;
  readonly amount: bigint | undefined;
}

/** A call sent, not yet checked: what it was, what it answered, and what the model says it should have. */
interface Issued {
  readonly what: string;
  readonly actual: Promise<Outcome<unknown>>;
  readonly expected: (seen: Outcome<unknown>) => Outcome<unknown>;
}

type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly code: string; readonly facts: Record<string, string> };

async function outcomeOf<T>(call: Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await call };
  } catch (error) {
    const e = error as ServiceError;
    const { detail, info } = decodeStatusDetails(e.metadata);
    return { ok: false, code: detail?.code ?? `no ErrorDetail: ${e.message}`, facts: info?.metadata ?? {} };
  }
}

const fail = (code: string, facts: Record<string, bigint | string> = {}): Outcome<never> => ({
  ok: false,
  code,
  facts: Object.fromEntries(Object.entries(facts).map(([k, v]) => [k, v.toString()])),
});

// ---------------------------------------------------------------------------------------------
// The model.

interface MAccount {
  readonly id: string;
  /** Creation order: with the clock never going back, (created_at, id) order is creation order. */
  readonly seq: number;
  readonly creditType: string;
  readonly source: string;
  readonly startsAtMs: number | null;
  readonly expiresAtMs: number | null;
  total: bigint;
  used: bigint;
  frozen: bigint;
}

interface Part {
  readonly account: MAccount;
  readonly amount: bigint;
}

interface MTransaction {
  readonly customerId: string;
  readonly kind: "deduct" | "freeze";
  readonly fingerprint: string;
  readonly response: DeductResponse | FreezeResponse;
  readonly amount: bigint;
  readonly creditTypes: readonly string[];
  readonly parts: readonly Part[];
  status: "DEDUCTED" | "FROZEN" | "CONSUMED" | "UNFROZEN";
  consumedAmount: bigint;
  settleResponse: ConsumeResponse | UnfreezeResponse | null;
  /** What the charge took from each account (a Deduct's parts; a consume's charges and overage) and what refunds gave back, by account id. */
  readonly charged: Map<string, { readonly account: MAccount; charged: bigint; refunded: bigint }>;
}

/** A deposit's ledger entry, as VoidDeposit names it. */
interface MRecord {
  readonly customerId: string;
  readonly account: MAccount;
  readonly amount: bigint;
  voided: bigint;
}

interface MStored<R> {
  readonly customerId: string;
  readonly fingerprint: string;
  readonly response: R;
}

interface MDepositKey {
  readonly customerId: string;
  readonly fingerprint: string;
  readonly response: DepositResponse;
}

type Status = "ACTIVE" | "PENDING" | "EXPIRED";
const PROTO_STATUS: Record<Status, AccountStatus> = {
  ACTIVE: AccountStatus.ACCOUNT_STATUS_ACTIVE,
  PENDING: AccountStatus.ACCOUNT_STATUS_PENDING,
  EXPIRED: AccountStatus.ACCOUNT_STATUS_EXPIRED,
};

const availableOf = (a: MAccount): bigint => a.total - a.used - a.frozen;

function statusOf(a: MAccount, nowMs: number): Status {
  if (a.startsAtMs !== null && a.startsAtMs > nowMs) return "PENDING";
  if (a.expiresAtMs !== null && a.expiresAtMs <= nowMs) return "EXPIRED";
  return "ACTIVE";
}

/** Soonest expiry first, never-expiring last, then oldest. */
function spendingOrder(a: MAccount, b: MAccount): number {
  const ea = a.expiresAtMs ?? Infinity;
  const eb = b.expiresAtMs ?? Infinity;
  if (ea !== eb) return ea < eb ? -1 : 1;
  return a.seq - b.seq;
}

function balanceOf(accounts: readonly MAccount[], nowMs: number): Balance {
  const active = accounts.filter((a) => statusOf(a, nowMs) === "ACTIVE");
  const sum = (pick: (a: MAccount) => bigint) => active.reduce((acc, a) => acc + pick(a), 0n);
  return { total: sum((a) => a.total), used: sum((a) => a.used), frozen: sum((a) => a.frozen), available: sum(availableOf) };
}

const tsOrUndefined = (ms: number | null): Timestamp | undefined => (ms === null ? undefined : ts(ms));

function accountView(a: MAccount, nowMs: number): Account {
  return {
    id: a.id,
    creditType: a.creditType,
    source: a.source,
    total: a.total,
    used: a.used,
    frozen: a.frozen,
    available: availableOf(a),
    startsAt: tsOrUndefined(a.startsAtMs),
    expiresAt: tsOrUndefined(a.expiresAtMs),
    status: PROTO_STATUS[statusOf(a, nowMs)],
  };
}

const detailOf = (p: Part): AllocationDetail => ({
  accountId: p.account.id,
  creditType: p.account.creditType,
  source: p.account.source,
  amount: p.amount,
});

type Allocation =
  | { readonly parts: Part[] }
  | { readonly code: string; readonly requested: bigint; readonly available: bigint; readonly wallet: string };

/** FEFO over ACTIVE accounts of the selected types; all or nothing. */
function allocate(accounts: readonly MAccount[], amount: bigint, creditTypes: readonly string[], nowMs: number): Allocation {
  const selected = new Set(creditTypes);
  const active = accounts.filter((a) => statusOf(a, nowMs) === "ACTIVE");
  const candidates = active.filter((a) => selected.size === 0 || selected.has(a.creditType)).sort(spendingOrder);
  const parts: Part[] = [];
  let remaining = amount;
  for (const account of candidates) {
    const take = availableOf(account) < remaining ? availableOf(account) : remaining;
    if (take > 0n) parts.push({ account, amount: take });
    remaining -= take;
  }
  if (remaining === 0n) return { parts };
  const availableSelected = candidates.reduce((sum, a) => sum + availableOf(a), 0n);
  const availableAll = active.reduce((sum, a) => sum + availableOf(a), 0n);
  const code = selected.size > 0 && availableAll >= amount ? "insufficient_balance_in_selected_credit_types" : "insufficient_balance";
  // The wallet fact names the selected types as the server keeps them (deduplicated, sorted), or "*".
  return { code, requested: amount, available: availableSelected, wallet: canonicalTypes(creditTypes).join(",") || "*" };
}

const canonicalTypes = (types: readonly string[]): string[] => [...new Set(types)].sort();

/** What parts took, summed per account. */
function chargedOf(parts: readonly Part[]): Map<string, { account: MAccount; charged: bigint; refunded: bigint }> {
  const charged = new Map<string, { account: MAccount; charged: bigint; refunded: bigint }>();
  for (const p of parts) {
    const known = charged.get(p.account.id);
    if (known) known.charged += p.amount;
    else charged.set(p.account.id, { account: p.account, charged: p.amount, refunded: 0n });
  }
  return charged;
}

/** Latest expiry first (never-expiring before any dated one), then newest: the order a partial refund gives back in. */
function refundOrder(a: MAccount, b: MAccount): number {
  const ea = a.expiresAtMs ?? Infinity;
  const eb = b.expiresAtMs ?? Infinity;
  if (ea !== eb) return ea > eb ? -1 : 1;
  return b.seq - a.seq;
}

/** One run: three fresh customers, the model of their accounts, and what was sent so far. */
class Run {
  private readonly customers = new Map<string, MAccount[]>();
  private readonly transactions = new Map<string, MTransaction>();
  private readonly depositKeys = new Map<string, MDepositKey>();
  private readonly refundKeys = new Map<string, MStored<RefundResponse>>();
  private readonly voidKeys = new Map<string, MStored<VoidDepositResponse>>();
  private readonly records = new Map<string, MRecord>();
  private readonly sentRefunds: RefundReq[] = [];
  private readonly sentVoids: VoidReq[] = [];
  private readonly sentDeposits: DepositReq[] = [];
  private readonly sentSpends: SpendReq[] = [];
  private readonly sentConsumes: ConsumeReq[] = [];
  private readonly customerIds: string[];
  private readonly startMs: number;
  private counter = 0;
  readonly trace: string[] = [];

  constructor(
    private readonly server: TestServer,
    private readonly prefix: string,
    private readonly ids: { account: bigint; ledgerEntry: bigint },
    private readonly tally: Map<string, number>,
  ) {
    this.customerIds = Array.from({ length: CUSTOMERS }, (_, i) => `${prefix}-c${i}`);
    this.startMs = server.clock.now();
  }

  private get now(): number {
    return this.server.clock.now();
  }

  private fresh(kind: string): string {
    this.counter += 1;
    return `${this.prefix}-${kind}${this.counter}`;
  }

  private customer(i: number): string {
    return this.customerIds[i] ?? `${this.prefix}-ghost`;
  }

  private instant(when: When | null): number | null {
    if (when === null) return null;
    if ("anchor" in when) return this.startMs + (ANCHORS_S[when.anchor] ?? 0) * 1000;
    return this.now + when.aheadMs;
  }

  async step(command: Command): Promise<void> {
    switch (command.kind) {
      case "deposit":
      case "deduct":
      case "freeze":
      case "consume":
      case "unfreeze":
      case "refund":
      case "void":
        return this.checkIssued(this.issue(command));
      case "burst":
        return this.burst(command);
      case "advance": {
        const by = "ms" in command.by ? command.by.ms : this.startMs + (ANCHORS_S[command.by.toAnchor] ?? 0) * 1000 - this.now;
        if (by > 0) this.server.clock.advance(by);
        this.trace.push(`advance ${by > 0 ? by : 0} ms → t+${this.now - this.startMs}`);
        return;
      }
    }
  }

  /** Resolves a call command against the history so far and sends it at once. */
  private issue(command: CallCmd, burstCustomer?: string): Issued {
    // In a burst every call names the burst's customer, a repeat of an earlier request too.
    const on = <T extends { customerId: string }>(r: T): T => (burstCustomer === undefined ? r : { ...r, customerId: burstCustomer });
    switch (command.kind) {
      case "deposit":
        return this.deposit(on(this.depositRequest(command)));
      case "deduct":
      case "freeze":
        return this.spend(on(this.spendRequest(command)));
      case "consume":
        return this.consume(this.consumeRequest(command));
      case "unfreeze":
        return this.unfreeze(this.unfreezeRequest(command));
      case "refund":
        return this.refund(this.refundRequest(command));
      case "void":
        return this.voidDeposit(this.voidRequest(command));
    }
  }

  /**
   * Sends the calls of a burst at once, without waiting between them (the server sees them
   * concurrently, so group commit applies those of one customer together), then checks every
   * answer against the sequential model in arrival order: the order they were sent in.
   */
  private async burst(command: BurstCmd): Promise<void> {
    const issued = command.calls.map((c) => this.issue(c, this.customer(command.customer)));
    const seen = await Promise.all(issued.map((i) => i.actual));
    this.trace.push(`burst of ${issued.length}:`);
    for (const [n, i] of issued.entries()) {
      const answer = seen[n] as Outcome<unknown>;
      this.check(`  ${i.what}`, answer, () => i.expected(answer));
    }
  }

  private issued<T>(what: string, actual: Promise<Outcome<T>>, expected: (seen: Outcome<T>) => Outcome<T>): Issued {
    return { what, actual, expected: expected as (seen: Outcome<unknown>) => Outcome<unknown> };
  }

  private async checkIssued(i: Issued): Promise<void> {
    const seen = await i.actual;
    this.check(i.what, seen, () => i.expected(seen));
  }

  // --- resolving abstract commands ---------------------------------------------------------

  private depositRequest(c: DepositCmd): DepositReq {
    const request: DepositReq = {
      customerId: this.customer(c.customer),
      amount: c.amount,
      idempotencyKey: c.key.mode === "none" ? "" : this.fresh("k"),
      creditType: c.creditType,
      source: c.source,
      startsAtMs: this.instant(c.startsAt),
      expiresAtMs: this.instant(c.expiresAt),
    };
    const keyed = this.sentDeposits.filter((d) => d.idempotencyKey !== "");
    if (c.key.mode !== "reuse" || keyed.length === 0) return request;
    const earlier = keyed[c.key.pick % keyed.length];
    if (!earlier) return request;
    return c.key.exact ? earlier : { ...request, idempotencyKey: earlier.idempotencyKey };
  }

  private spendRequest(c: SpendCmd): SpendReq {
    const request: SpendReq = {
      kind: c.kind,
      customerId: this.customer(c.customer),
      transactionId: this.fresh("t"),
      amount: typeof c.amount === "bigint" ? c.amount : this.edgeAmount(c.customer, c.amount, c.creditTypes),
      creditTypes: c.creditTypes,
      auto: c.kind === "freeze" ? c.auto : null,
    };
    if (c.id.mode !== "reuse" || this.sentSpends.length === 0) return request;
    const earlier = this.sentSpends[c.id.pick % this.sentSpends.length];
    if (!earlier) return request;
    return c.id.exact ? earlier : { ...request, transactionId: earlier.transactionId };
  }

  /** What the customer holds available now (in the selected types), plus -1, 0 or 1; at least 1. */
  private edgeAmount(customer: number, amount: Exclude<SpendAmount, bigint>, creditTypes: readonly string[]): bigint {
    const nowMs = this.now;
    const types = new Set(amount.edge === "all" ? [] : creditTypes);
    const held = this.accountsOf(this.customer(customer))
      .filter((a) => statusOf(a, nowMs) === "ACTIVE" && (types.size === 0 || types.has(a.creditType)))
      .reduce((sum, a) => sum + availableOf(a), 0n);
    return held + amount.plus > 0n ? held + amount.plus : 1n;
  }

  private targetOf(target: Target): { transactionId: string; customerId: string | null; amount: bigint } {
    // "frozen" picks a hold still FROZEN (else any hold), "hold" any hold whatever its status,
    // "any" any id sent to Deduct or Freeze, failed ones included.
    const holds = [...new Set(this.sentSpends.map((r) => r.transactionId))].filter((id) => this.transactions.get(id)?.kind === "freeze");
    const frozen = holds.filter((id) => this.transactions.get(id)?.status === "FROZEN");
    // A "repeat" with no earlier Consume to repeat acts as "frozen".
    const from = target.from === "repeat" ? "frozen" : target.from;
    const ids =
      from === "frozen" ? (frozen.length > 0 ? frozen : holds) : from === "hold" ? holds : this.sentSpends.map((r) => r.transactionId);
    if (target.from === "unknown" || ids.length === 0) {
      return { transactionId: this.fresh("unknown"), customerId: null, amount: 50n };
    }
    const transactionId = ids[target.pick % ids.length] ?? "";
    const held = this.transactions.get(transactionId);
    const sent = this.sentSpends.find((r) => r.transactionId === transactionId);
    return { transactionId, customerId: held?.customerId ?? sent?.customerId ?? null, amount: held?.amount ?? sent?.amount ?? 50n };
  }

  private scopeOf(scope: Scope, owner: string | null): string {
    if (scope === "none") return "";
    const own = owner ?? this.customer(0);
    if (scope === "own") return own;
    const index = this.customerIds.indexOf(own);
    return this.customer(index + 1);
  }

  private consumeRequest(c: ConsumeCmd): ConsumeReq {
    if (c.target.from === "repeat" && this.sentConsumes.length > 0) {
      const earlier = this.sentConsumes[c.target.pick % this.sentConsumes.length];
      // In a burst the repeat names the burst's customer too: one naming another customer (or
      // none) is not ordered with the burst's calls, and could overtake the Deduct or Freeze of
      // its transaction id that the model applies before it.
      if (earlier) return c.burstCustomer === undefined ? earlier : { ...earlier, customerId: this.customer(c.burstCustomer) };
    }
    const target = this.targetOf(c.target);
    const actualAmount =
      c.actual.mode === "unset"
        ? undefined
        : c.actual.mode === "zero"
          ? 0n
          : target.amount + c.actual.delta < 0n
            ? 0n
            : target.amount + c.actual.delta;
    return {
      transactionId: target.transactionId,
      customerId: c.burstCustomer === undefined ? this.scopeOf(c.scope, target.customerId) : this.customer(c.burstCustomer),
      actualAmount,
      allowOverage: c.allowOverage,
    };
  }

  private unfreezeRequest(c: UnfreezeCmd): UnfreezeReq {
    const target = this.targetOf(c.target);
    const customerId = c.burstCustomer === undefined ? this.scopeOf(c.scope, target.customerId) : this.customer(c.burstCustomer);
    return { transactionId: target.transactionId, customerId };
  }

  // --- executing and checking ---------------------------------------------------------------

  /** Counts a notable case the model went through, for the coverage summary. */
  private note(label: string): void {
    this.tally.set(`  (${label})`, (this.tally.get(`  (${label})`) ?? 0) + 1);
  }

  /** Records the call in the trace, then asks the model what it should have answered. */
  private check<T>(what: string, actual: Outcome<T>, expected: () => Outcome<T>): void {
    const shown = actual.ok ? "ok" : `${actual.code} ${JSON.stringify(actual.facts)}`;
    this.trace.push(`${what} → ${shown}`);
    const replay = actual.ok && (actual.value as { isIdempotentReplay?: boolean }).isIdempotentReplay === true;
    const label = `${what.split(" ")[0]} ${actual.ok ? (replay ? "replay" : "ok") : actual.code}`;
    this.tally.set(label, (this.tally.get(label) ?? 0) + 1);
    expect(actual, what).toEqual(expected());
  }

  private accountsOf(customerId: string): MAccount[] {
    return this.customers.get(customerId) ?? [];
  }

  private deposit(r: DepositReq): Issued {
    this.sentDeposits.push(r);
    const actual = outcomeOf(
      this.server.client.call("deposit", {
        customerId: r.customerId,
        amount: r.amount,
        idempotencyKey: r.idempotencyKey,
        creditType: r.creditType,
        source: r.source,
        startsAt: tsOrUndefined(r.startsAtMs),
        expiresAt: tsOrUndefined(r.expiresAtMs),
      }),
    );
    const what = `deposit ${JSON.stringify({ ...r, amount: r.amount.toString(), t: this.now - this.startMs })}`;
    return this.issued(what, actual, (seen) => this.expectDeposit(r, seen));
  }

  private expectDeposit(r: DepositReq, actual: Outcome<DepositResponse>): Outcome<DepositResponse> {
    const creditType = r.creditType === "" ? "default" : r.creditType;
    const source = r.source === "" ? "default" : r.source;
    const fingerprint = JSON.stringify([r.amount.toString(), creditType, source, r.startsAtMs, r.expiresAtMs]);
    if (r.idempotencyKey !== "") {
      const stored = this.depositKeys.get(r.idempotencyKey);
      if (stored) {
        if (stored.customerId !== r.customerId) return fail("transaction_conflict");
        if (stored.fingerprint !== fingerprint) return fail("idempotency_conflict");
        return { ok: true, value: { ...stored.response, isIdempotentReplay: true } };
      }
    }
    const nowMs = this.now;
    if (r.expiresAtMs !== null && r.expiresAtMs <= nowMs) return fail("invalid_expires_at", { field: "expires_at" });
    if (r.expiresAtMs !== null && r.startsAtMs !== null && r.expiresAtMs <= r.startsAtMs) {
      return fail("invalid_datetime_range", { field: "expires_at" });
    }
    if (!actual.ok) return fail("(the model expected this deposit to succeed)");

    const accounts = this.accountsOf(r.customerId);
    this.customers.set(r.customerId, accounts);
    let account = accounts.find(
      (a) => a.creditType === creditType && a.source === source && a.startsAtMs === r.startsAtMs && a.expiresAtMs === r.expiresAtMs,
    );
    if (!account) {
      const id = actual.value.account?.id ?? "";
      expect(BigInt(id), "a new account gets a new, larger id").toBeGreaterThan(this.ids.account);
      this.ids.account = BigInt(id);
      account = {
        id,
        seq: Number(id),
        creditType,
        source,
        startsAtMs: r.startsAtMs,
        expiresAtMs: r.expiresAtMs,
        total: 0n,
        used: 0n,
        frozen: 0n,
      };
      accounts.push(account);
    } else {
      this.note("deposit into an existing account");
    }
    if (statusOf(account, nowMs) === "PENDING") this.note("deposit into a pending account");
    account.total += r.amount;
    const ledgerEntryId = actual.value.ledgerEntryId;
    expect(BigInt(ledgerEntryId), "a deposit appends a new ledger entry").toBeGreaterThan(this.ids.ledgerEntry);
    this.ids.ledgerEntry = BigInt(ledgerEntryId);
    const response: DepositResponse = {
      customerId: r.customerId,
      account: accountView(account, nowMs),
      addedAmount: r.amount,
      ledgerEntryId,
      balance: balanceOf(accounts, nowMs),
      isIdempotentReplay: false,
    };
    if (r.idempotencyKey !== "") this.depositKeys.set(r.idempotencyKey, { customerId: r.customerId, fingerprint, response });
    this.records.set(ledgerEntryId, { customerId: r.customerId, account, amount: r.amount, voided: 0n });
    return { ok: true, value: response };
  }

  private spend(r: SpendReq): Issued {
    this.sentSpends.push(r);
    const base = { customerId: r.customerId, transactionId: r.transactionId, amount: r.amount, creditTypes: [...r.creditTypes] };
    const actual: Promise<Outcome<DeductResponse | FreezeResponse>> =
      r.kind === "deduct"
        ? outcomeOf(this.server.client.call("deduct", base))
        : outcomeOf(
            this.server.client.call("freeze", {
              ...base,
              unfreezeAfterSeconds: r.auto?.action === "unfreeze" ? r.auto.seconds : undefined,
              consumeAfterSeconds: r.auto?.action === "consume" ? r.auto.seconds : undefined,
            }),
          );
    const what = `${r.kind} ${JSON.stringify({ ...r, amount: r.amount.toString(), auto: r.auto && `${r.auto.action} ${r.auto.seconds}` })}`;
    return this.issued(what, actual, () => this.expectSpend(r));
  }

  private expectSpend(r: SpendReq): Outcome<DeductResponse | FreezeResponse> {
    const creditTypes = canonicalTypes(r.creditTypes);
    const fingerprint = JSON.stringify([r.kind, r.amount.toString(), creditTypes, r.auto && [r.auto.action, r.auto.seconds.toString()]]);
    const stored = this.transactions.get(r.transactionId);
    if (stored) {
      if (stored.customerId !== r.customerId) return fail("transaction_conflict");
      if (stored.fingerprint !== fingerprint) return fail("idempotency_conflict");
      return { ok: true, value: { ...stored.response, isIdempotentReplay: true } };
    }
    const accounts = this.customers.get(r.customerId);
    if (!accounts) return fail("customer_not_found", { customer_id: r.customerId });
    const nowMs = this.now;
    const allocation = allocate(accounts, r.amount, creditTypes, nowMs);
    if ("code" in allocation)
      return fail(allocation.code, { requested: allocation.requested, available: allocation.available, wallet: allocation.wallet });
    if (allocation.parts.length > 1) this.note(`${r.kind} over ${allocation.parts.length} accounts`);
    for (const p of allocation.parts) {
      if (r.kind === "deduct") p.account.used += p.amount;
      else p.account.frozen += p.amount;
    }
    const common = {
      transactionId: r.transactionId,
      details: allocation.parts.map(detailOf),
      balance: balanceOf(accounts, nowMs),
      isIdempotentReplay: false,
    };
    const autoAt = r.auto ? ts(nowMs + Number(r.auto.seconds) * 1000) : undefined;
    const response: DeductResponse | FreezeResponse =
      r.kind === "deduct"
        ? { ...common, deductedAmount: r.amount, deductedAt: ts(nowMs) }
        : {
            ...common,
            frozenAmount: r.amount,
            frozenAt: ts(nowMs),
            unfreezeAt: r.auto?.action === "unfreeze" ? autoAt : undefined,
            consumeAt: r.auto?.action === "consume" ? autoAt : undefined,
          };
    this.transactions.set(r.transactionId, {
      customerId: r.customerId,
      kind: r.kind,
      fingerprint,
      response,
      amount: r.amount,
      creditTypes,
      parts: allocation.parts,
      status: r.kind === "deduct" ? "DEDUCTED" : "FROZEN",
      consumedAmount: 0n,
      settleResponse: null,
      charged: r.kind === "deduct" ? chargedOf(allocation.parts) : new Map(),
    });
    return { ok: true, value: response };
  }

  /** The hold a Consume or Unfreeze may act on, or the error that comes first. */
  private holdFor(transactionId: string, scope: string, missing: string): MTransaction | Outcome<never> {
    const hold = this.transactions.get(transactionId);
    if (hold && scope !== "" && scope !== hold.customerId) return fail("customer_scope_mismatch", { customer_id: scope });
    if (hold?.kind !== "freeze") return fail(missing);
    return hold;
  }

  private consume(r: ConsumeReq): Issued {
    this.sentConsumes.push(r);
    const actual = outcomeOf(
      this.server.client.call("consume", {
        transactionId: r.transactionId,
        customerId: r.customerId,
        actualAmount: r.actualAmount,
        allowOverage: r.allowOverage,
      }),
    );
    const what = `consume ${JSON.stringify({ ...r, actualAmount: r.actualAmount?.toString() ?? "unset" })}`;
    return this.issued(what, actual, () => this.expectConsume(r));
  }

  private expectConsume(r: ConsumeReq): Outcome<ConsumeResponse> {
    const hold = this.holdFor(r.transactionId, r.customerId, "no_consumable_freeze_records");
    if ("ok" in hold) return hold;
    const actual = r.actualAmount ?? hold.amount;
    if (hold.status === "CONSUMED") {
      if (hold.consumedAmount !== actual)
        return fail("freeze_records_already_consumed", { consumed: hold.consumedAmount, requested: actual });
      return { ok: true, value: { ...(hold.settleResponse as ConsumeResponse), isIdempotentReplay: true } };
    }
    if (hold.status !== "FROZEN") return fail("no_consumable_freeze_records");
    if (actual > hold.amount && !r.allowOverage) {
      return fail("actual_amount_exceeds_frozen_amount", { requested: actual, frozen: hold.amount });
    }
    const nowMs = this.now;
    const accounts = this.accountsOf(hold.customerId);
    const overage = actual > hold.amount ? actual - hold.amount : 0n;
    let overageParts: Part[] = [];
    if (overage > 0n) {
      // Charged like a deduct over the hold's credit types, before the hold moves; short → plain
      // insufficient_balance whatever the filter.
      const allocation = allocate(accounts, overage, hold.creditTypes, nowMs);
      if ("code" in allocation)
        return fail("insufficient_balance", {
          requested: allocation.requested,
          available: allocation.available,
          wallet: allocation.wallet,
        });
      overageParts = allocation.parts;
    }
    const charges: Part[] = [];
    const returns: Part[] = [];
    let toCharge = actual;
    for (const part of hold.parts) {
      const charge = part.amount < toCharge ? part.amount : toCharge;
      toCharge -= charge;
      if (charge > 0n) charges.push({ account: part.account, amount: charge });
      if (part.amount > charge) returns.push({ account: part.account, amount: part.amount - charge });
    }
    if (hold.parts.some((p) => statusOf(p.account, nowMs) === "EXPIRED")) this.note("consume of a hold whose account expired");
    if (overage > 0n) this.note("consume with overage");
    if (returns.length > 0 && charges.length > 0) this.note("partial consume");
    if (r.customerId !== "") this.note("consume with its own customer_id");
    for (const p of charges) {
      p.account.frozen -= p.amount;
      p.account.used += p.amount;
    }
    for (const p of returns) p.account.frozen -= p.amount;
    for (const p of overageParts) p.account.used += p.amount;
    const response: ConsumeResponse = {
      transactionId: r.transactionId,
      consumedAmount: actual,
      returnedAmount: returns.reduce((sum, p) => sum + p.amount, 0n),
      overageAmount: overage,
      details: [...charges, ...overageParts].map(detailOf),
      returnedDetails: returns.map(detailOf),
      consumedAt: ts(nowMs),
      balance: balanceOf(accounts, nowMs),
      isIdempotentReplay: false,
    };
    for (const [id, part] of chargedOf([...charges, ...overageParts])) hold.charged.set(id, part);
    hold.status = "CONSUMED";
    hold.consumedAmount = actual;
    hold.settleResponse = response;
    return { ok: true, value: response };
  }

  private unfreeze(r: UnfreezeReq): Issued {
    const actual = outcomeOf(this.server.client.call("unfreeze", { transactionId: r.transactionId, customerId: r.customerId }));
    return this.issued(`unfreeze ${JSON.stringify(r)}`, actual, () => this.expectUnfreeze(r));
  }

  private expectUnfreeze(r: UnfreezeReq): Outcome<UnfreezeResponse> {
    const hold = this.holdFor(r.transactionId, r.customerId, "no_unfreezable_records");
    if ("ok" in hold) return hold;
    if (hold.status === "UNFROZEN") return { ok: true, value: { ...(hold.settleResponse as UnfreezeResponse), isIdempotentReplay: true } };
    if (hold.status !== "FROZEN") return fail("no_unfreezable_records");
    const nowMs = this.now;
    if (hold.parts.some((p) => statusOf(p.account, nowMs) === "EXPIRED")) this.note("unfreeze of a hold whose account expired");
    for (const p of hold.parts) p.account.frozen -= p.amount;
    const response: UnfreezeResponse = {
      transactionId: r.transactionId,
      unfrozenAmount: hold.amount,
      details: hold.parts.map(detailOf),
      unfrozenAt: ts(nowMs),
      balance: balanceOf(this.accountsOf(hold.customerId), nowMs),
      isIdempotentReplay: false,
    };
    hold.status = "UNFROZEN";
    hold.settleResponse = response;
    return { ok: true, value: response };
  }

  // --- reversals ---------------------------------------------------------------------------

  private refundable(t: MTransaction): bigint {
    return [...t.charged.values()].reduce((sum, p) => sum + p.charged - p.refunded, 0n);
  }

  private reversalAmount(amount: ReversalAmount, left: bigint): bigint | undefined {
    if (amount.mode === "unset") return undefined;
    if (amount.mode === "fixed") return amount.value;
    return left + amount.plus > 0n ? left + amount.plus : 1n;
  }

  private refundRequest(c: RefundCmd): RefundReq {
    const charges = [...this.transactions.entries()]
      .filter(([, t]) => t.status === "DEDUCTED" || t.status === "CONSUMED")
      .map(([id]) => id);
    const any = this.sentSpends.map((r) => r.transactionId);
    const ids = c.target.from === "charge" ? charges : c.target.from === "any" ? any : [];
    const transactionId = c.target.from === "unknown" || ids.length === 0 ? this.fresh("unknown") : (ids[c.target.pick % ids.length] ?? "");
    const held = this.transactions.get(transactionId);
    const request: RefundReq = {
      transactionId,
      refundId: this.fresh("r"),
      customerId: c.burstCustomer === undefined ? this.scopeOf(c.scope, held?.customerId ?? null) : this.customer(c.burstCustomer),
      amount: this.reversalAmount(c.amount, held ? this.refundable(held) : 50n),
    };
    if (c.key.mode !== "reuse" || this.sentRefunds.length === 0) return request;
    const earlier = this.sentRefunds[c.key.pick % this.sentRefunds.length];
    if (!earlier) return request;
    const reused = c.key.exact ? earlier : { ...request, refundId: earlier.refundId };
    return c.burstCustomer === undefined ? reused : { ...reused, customerId: this.customer(c.burstCustomer) };
  }

  private refund(r: RefundReq): Issued {
    this.sentRefunds.push(r);
    const actual = outcomeOf(this.server.client.call("refund", { ...r }));
    const what = `refund ${JSON.stringify({ ...r, amount: r.amount?.toString() ?? "unset" })}`;
    return this.issued(what, actual, () => this.expectRefund(r));
  }

  private expectRefund(r: RefundReq): Outcome<RefundResponse> {
    const charge = this.transactions.get(r.transactionId);
    if (!charge) return fail("transaction_not_found", { transaction_id: r.transactionId });
    if (r.customerId !== "" && r.customerId !== charge.customerId) return fail("customer_scope_mismatch", { customer_id: r.customerId });
    const fingerprint = JSON.stringify([r.transactionId, r.customerId, r.amount?.toString() ?? null]);
    const stored = this.refundKeys.get(r.refundId);
    if (stored) {
      if (stored.customerId !== charge.customerId) return fail("transaction_conflict");
      if (stored.fingerprint !== fingerprint) return fail("idempotency_conflict");
      return { ok: true, value: { ...stored.response, isIdempotentReplay: true } };
    }
    if (charge.kind === "freeze" && charge.status !== "CONSUMED") {
      return fail("transaction_not_refundable", { transaction_id: r.transactionId, status: charge.status });
    }
    const refundable = this.refundable(charge);
    if (r.amount === undefined && refundable === 0n)
      return fail("transaction_not_refundable", { transaction_id: r.transactionId, refundable: 0n });
    const amount = r.amount ?? refundable;
    if (amount > refundable) return fail("refund_exceeds_refundable", { requested: amount, refundable });
    const nowMs = this.now;
    const details: RefundResponse["refundDetails"] = [];
    let left = amount;
    for (const part of [...charge.charged.values()].sort((a, b) => refundOrder(a.account, b.account))) {
      const take = part.charged - part.refunded < left ? part.charged - part.refunded : left;
      if (take <= 0n) continue;
      part.refunded += take;
      part.account.used -= take;
      left -= take;
      const expired = statusOf(part.account, nowMs) === "EXPIRED";
      details.push({ accountId: part.account.id, creditType: part.account.creditType, amount: take, expired });
    }
    const expiredAmount = details.filter((d) => d.expired).reduce((sum, d) => sum + d.amount, 0n);
    if (expiredAmount > 0n) this.note("refund to an expired account");
    if (amount < refundable) this.note("partial refund");
    if (details.length > 1) this.note(`refund over ${details.length} accounts`);
    const response: RefundResponse = {
      refundId: r.refundId,
      transactionId: r.transactionId,
      refundedAmount: amount,
      restoredAmount: amount - expiredAmount,
      expiredAmount,
      refundDetails: details,
      refundedAt: ts(nowMs),
      balance: balanceOf(this.accountsOf(charge.customerId), nowMs),
      isIdempotentReplay: false,
    };
    this.refundKeys.set(r.refundId, { customerId: charge.customerId, fingerprint, response });
    return { ok: true, value: response };
  }

  private voidRequest(c: VoidCmd): VoidReq {
    const named = c.burstCustomer === undefined ? null : this.customer(c.burstCustomer);
    const all = [...this.records.keys()];
    const own = named === null ? all : all.filter((id) => this.records.get(id)?.customerId === named);
    const pool = own.length > 0 ? own : all;
    const recordId = c.record === "unknown" || pool.length === 0 ? "999999999999" : (pool[c.record.pick % pool.length] ?? "");
    const record = this.records.get(recordId);
    const owner = record?.customerId ?? this.customer(0);
    const customerId = named ?? (c.scope === "own" ? owner : this.scopeOf("other", owner));
    const left = record ? this.voidable(record) : 50n;
    const request: VoidReq = { customerId, recordId, voidId: this.fresh("v"), amount: this.reversalAmount(c.amount, left) };
    if (c.key.mode !== "reuse" || this.sentVoids.length === 0) return request;
    const earlier = this.sentVoids[c.key.pick % this.sentVoids.length];
    if (!earlier) return request;
    const reused = c.key.exact ? earlier : { ...request, voidId: earlier.voidId };
    return named === null ? reused : { ...reused, customerId: named };
  }

  private voidable(record: MRecord): bigint {
    if (statusOf(record.account, this.now) === "EXPIRED") return 0n;
    const left = record.amount - record.voided;
    return left < availableOf(record.account) ? left : availableOf(record.account);
  }

  private voidDeposit(r: VoidReq): Issued {
    this.sentVoids.push(r);
    const actual = outcomeOf(this.server.client.call("voidDeposit", { ...r }));
    const what = `void ${JSON.stringify({ ...r, amount: r.amount?.toString() ?? "unset" })}`;
    return this.issued(what, actual, () => this.expectVoid(r));
  }

  private expectVoid(r: VoidReq): Outcome<VoidDepositResponse> {
    const notFound = fail("deposit_not_found", { record_id: r.recordId });
    if (!this.customers.has(r.customerId)) return notFound;
    const fingerprint = JSON.stringify([r.customerId, r.recordId, r.amount?.toString() ?? null]);
    const stored = this.voidKeys.get(r.voidId);
    if (stored) {
      if (stored.customerId !== r.customerId) return fail("transaction_conflict");
      if (stored.fingerprint !== fingerprint) return fail("idempotency_conflict");
      return { ok: true, value: { ...stored.response, isIdempotentReplay: true } };
    }
    const record = this.records.get(r.recordId);
    if (!record || record.customerId !== r.customerId) return notFound;
    const voidable = this.voidable(record);
    const refused = {
      record_id: r.recordId,
      ...(r.amount !== undefined && { requested: r.amount }),
      voidable: voidable > 0n ? voidable : 0n,
    };
    if (voidable <= 0n) return fail("deposit_not_voidable", refused);
    const amount = r.amount ?? voidable;
    if (amount > voidable) return fail("deposit_not_voidable", refused);
    if (amount < voidable) this.note("partial void");
    if (record.account.used + record.account.frozen > 0n) this.note("void of a deposit partly used");
    record.voided += amount;
    record.account.total -= amount;
    const nowMs = this.now;
    const response: VoidDepositResponse = {
      voidId: r.voidId,
      recordId: r.recordId,
      voidedAmount: amount,
      voidedAt: ts(nowMs),
      balance: balanceOf(this.accountsOf(r.customerId), nowMs),
      isIdempotentReplay: false,
    };
    this.voidKeys.set(r.voidId, { customerId: r.customerId, fingerprint, response });
    return { ok: true, value: response };
  }

  /** GetCustomer (inactive accounts included) agrees with the model for every customer. */
  async checkCustomers(): Promise<void> {
    const nowMs = this.now;
    for (const customerId of this.customerIds) {
      const actual = await outcomeOf(this.server.client.call("getCustomer", { customerId, includeInactive: true }));
      const accounts = this.customers.get(customerId);
      if (!accounts) {
        this.check(`getCustomer ${customerId}`, actual, () => fail("customer_not_found", { customer_id: customerId }));
        continue;
      }
      const types = [...new Set(accounts.map((a) => a.creditType))].sort();
      const expected = {
        balance: balanceOf(accounts, nowMs),
        creditTypes: types.map((creditType) => {
          const ofType = accounts.filter((a) => a.creditType === creditType).sort(spendingOrder);
          return { creditType, balance: balanceOf(ofType, nowMs), accounts: ofType.map((a) => accountView(a, nowMs)) };
        }),
      };
      const seen = actual.ok
        ? { ok: true as const, value: { balance: actual.value.balance, creditTypes: actual.value.creditTypes } }
        : actual;
      this.check(`getCustomer ${customerId}`, seen, () => ({ ok: true, value: expected }));
    }
  }
}

/** A deposit for each customer first, so that most runs have money to move, then anything. */
const commandsArb: fc.Arbitrary<Command[]> = fc
  .tuple(
    fc.array(depositArb, { minLength: CUSTOMERS, maxLength: CUSTOMERS + 1 }),
    fc.array(commandArb, { minLength: 10, maxLength: COMMANDS_MAX - CUSTOMERS - 1, size: "max" }),
  )
  .map(([deposits, rest]): Command[] => [
    ...deposits.map((d, i): DepositCmd => ({ ...d, customer: i % CUSTOMERS, startsAt: null, key: { mode: "new" } })),
    ...rest,
  ]);

describe("the server agrees with a model of the design", () => {
  it(
    `over ${RUNS} random runs of up to ${COMMANDS_MAX} deposits, deducts, freezes, consumes, unfreezes, refunds, voids, concurrent bursts on one customer and clock moves`,
    async () => {
      const ids = { account: 0n, ledgerEntry: 0n };
      const stats = { runs: 0, commands: 0 };
      const tally = new Map<string, number>();
      await fc.assert(
        fc.asyncProperty(commandsArb, async (commands) => {
          const run = new Run(s, uid("model"), ids, tally);
          stats.runs += 1;
          try {
            for (const command of commands) {
              await run.step(command);
              stats.commands += 1;
            }
            await run.checkCustomers();
            const report = await verifyLedger(s.app.database.db);
            expect(report.problems).toEqual([]);
          } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            throw new Error(`${message}\n\nthe run so far:\n  ${run.trace.join("\n  ")}`, { cause: error });
          }
        }),
        { numRuns: RUNS, interruptAfterTimeLimit: Math.max(150_000, RUNS * 2500), ...SEED },
      );
      console.log(`${stats.runs} runs, ${stats.commands} commands; outcomes:`, Object.fromEntries([...tally].sort()));
      expect(stats.runs).toBeGreaterThanOrEqual(RUNS);
      // The bursts reached group commit: some calls waited for their customer's transaction and
      // were applied together with others.
      const groups = (await s.app.metrics.groupCommitSize.get()).values;
      const calls = groups.find((v) => v.metricName === "billing_group_commit_size_sum")?.value ?? 0;
      const transactions = groups.find((v) => v.metricName === "billing_group_commit_size_count")?.value ?? 0;
      console.log(`group commit: ${calls} calls in ${transactions} transactions`);
      expect(calls).toBeGreaterThan(transactions);
    },
    Math.max(180_000, RUNS * 3000),
  );
});
