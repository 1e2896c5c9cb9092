import { credentials, Metadata, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { EventServiceClient, type Event, type WatchEventsRequest, type WatchEventsResponse } from "../../gen/velobase/billing/v1/events.js";
import type { App } from "../../src/app.js";
import type { EventPayload, EventType, NewEvent } from "../../src/domain/events.js";
import { appendEventsSql, newEventId } from "../../src/store/event-rows.js";
import { runTransaction, type Tx } from "../../src/store/run-transaction.js";

/** Appends events in a transaction the caller holds open (and commits, with `commit`): what a write's apply does. */
export async function appendEventsInTx(tx: Tx, list: readonly NewEvent[], options: { commit?: boolean } = {}): Promise<void> {
  await tx.run(appendEventsSql(list), options);
}

/** An event as a write would append it; the payload's entries are the caller's. */
export function testEvent(
  app: App,
  fields: {
    customerId?: string | null;
    type?: EventType;
    transactionId?: string | null;
    payload?: Partial<EventPayload>;
    projectId?: bigint;
    nowMs?: number;
  },
): NewEvent {
  const feed = app.context.events;
  if (!feed) throw new Error("the app has no event feed");
  return {
    eventId: newEventId(feed.deploymentId),
    projectId: fields.projectId ?? 1n,
    customerId: fields.customerId === undefined ? "cust" : fields.customerId,
    type: fields.type ?? "ledger.deposit",
    transactionId: fields.transactionId ?? null,
    payload: { entries: [], balanceAfter: null, data: {}, ...fields.payload },
    nowMs: fields.nowMs ?? app.context.now(),
  };
}

/** Appends events in one real transaction and commits it, then nudges the stamper as the pipeline does. */
export async function commitEvents(app: App, events: readonly NewEvent[]): Promise<void> {
  await runTransaction(app.database, (tx) => appendEventsInTx(tx, events, { commit: true }));
  app.context.events?.notifyCommitted();
}

/**
 * A transaction that appended events and stays open until `commit()` (or `rollback()`): the
 * lower-id event that commits after a higher one.
 */
export async function openEventTransaction(
  app: App,
  events: readonly NewEvent[],
): Promise<{ commit(): Promise<void>; rollback(): Promise<void> }> {
  let release: (commit: boolean) => void = () => undefined;
  const decided = new Promise<boolean>((resolve) => (release = resolve));
  let appended: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (appended = resolve));
  const done = runTransaction(app.database, async (tx: Tx) => {
    await appendEventsInTx(tx, events);
    appended();
    if (await decided) await tx.run([], { commit: true });
  });
  await ready;
  return {
    async commit() {
      release(true);
      await done;
      app.context.events?.notifyCommitted();
    },
    async rollback() {
      release(false);
      await done;
    },
  };
}

/** A WatchEvents stream on a server, collecting what it receives. */
export class TestWatcher {
  readonly events: Event[] = [];
  /** The stream's end: null when it ended OK or was cancelled, else its error. */
  readonly ended: Promise<ServiceError | null>;
  private readonly client: EventServiceClient;
  private readonly stream: ClientReadableStream<WatchEventsResponse>;
  private readonly waiters: { check: () => boolean; resolve: () => void }[] = [];

  constructor(port: number, apiKey: string, request: Partial<WatchEventsRequest> = {}) {
    this.client = new EventServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    const metadata = new Metadata();
    metadata.set("authorization", `Bearer ${apiKey}`);
    this.stream = this.client.watchEvents({ cursor: "", customerId: "", types: [], ...request }, metadata);
    this.stream.on("data", (response: WatchEventsResponse) => {
      if (response.event) this.events.push(response.event);
      this.check();
    });
    this.ended = new Promise((resolve) => {
      this.stream.on("error", (error: ServiceError) => {
        resolve(error.code === 1 ? null : error);
        this.check();
      });
      this.stream.on("end", () => resolve(null));
    });
    this.ended.then(() => this.check());
  }

  /** Resolves once `predicate` holds of the events received (checked on every message). */
  until(predicate: (events: readonly Event[]) => boolean): Promise<void> {
    if (predicate(this.events)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ check: () => predicate(this.events), resolve }));
  }

  /** Resolves once `n` events arrived. */
  count(n: number): Promise<void> {
    return this.until((events) => events.length >= n);
  }

  private check(): void {
    for (const waiter of [...this.waiters]) {
      if (waiter.check()) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }

  /** Stops reading: what the server sends next waits in the connection's windows, then in the server. */
  pause(): void {
    this.stream.pause();
  }

  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}

import { AlertServiceClient } from "../../gen/velobase/billing/v1/alerts.js";

type AlertMethod = "setAlert" | "listAlerts" | "deleteAlert";

/** One AlertService call with a key (promise form of the generated callback client). */
export function alertCall<M extends AlertMethod>(
  port: number,
  apiKey: string,
  method: M,
  request: Parameters<AlertServiceClient[M]>[0],
): Promise<unknown> {
  const client = new AlertServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${apiKey}`);
  const call = client[method].bind(client) as unknown as (
    r: unknown,
    m: Metadata,
    cb: (e: ServiceError | null, v: unknown) => void,
  ) => void;
  return new Promise<unknown>((resolve, reject) =>
    call(request, metadata, (error, value) => {
      client.close();
      if (error) reject(error);
      else resolve(value);
    }),
  );
}
