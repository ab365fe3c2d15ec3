/**
 * Test tooling for the client package (`@chat-service/client`), used by test/client-*.test.ts.
 * Nothing here replaces a part of the library: `Wire` is a subclass of the platform's own WebSocket
 * that only records what goes through (URLs asked for, when, and every frame received), and
 * the recorders only listen. Waits are bounded and event driven: they re-check a condition
 * whenever the watched socket emits something, and fail with what was seen.
 */
import { Compile } from 'typebox/compile';
import { ChatClient, type ChatClientOptions } from '@chat-service/client';
import type { ChatSocket, ChatSocketState, ErrorEvent, MemberRemovedEvent, NotificationReadEvent, NotificationSocket, NotificationView, ReadUpdatedEvent, ConversationEvent, UserTypingEvent, WebSocketConstructor } from '@chat-service/client';
import { randomName } from './api.js';
import { ChatServerEventSchema, eventSchemaContext, NotificationServerEventSchema } from '../../src/contract/events.js';

/** Bound on any wait: generous, since CI runs several service processes on two cores. */
export const WAIT_MS = 15_000;

export const chatEventValidator = Compile(eventSchemaContext, ChatServerEventSchema);
export const notificationEventValidator = Compile(eventSchemaContext, NotificationServerEventSchema);

/** The frames of `frames` that do not validate against `validator`, with the validator's errors. */
export function invalidFrames(frames: readonly string[], validator: typeof chatEventValidator | typeof notificationEventValidator) {
  return frames
    .map((text) => ({ text, value: JSON.parse(text) as unknown }))
    .filter(({ value }) => !validator.Check(value))
    .map(({ text, value }) => ({ text, errors: validator.Errors(value).map((error) => `${error.instancePath} ${error.message}`) }));
}

export interface Attempt {
  url: URL;
  /** `performance.now()` when the socket was constructed. */
  at: number;
  /** Text frames the client sent on this connection. */
  sent: string[];
}

/** The platform WebSocket, recording every connection attempt, every frame sent on it, and every text frame received. */
export class Wire {
  readonly attempts: Attempt[] = [];
  readonly frames: string[] = [];
  /**
   * When each socket ticket was asked for (`POST /api/auth/ws-ticket/`): every connect try
   * starts with one, so while the service is unreachable these are the tries (no socket is
   * opened without a ticket).
   */
  readonly ticketRequests: number[] = [];
  readonly WebSocket: WebSocketConstructor;
  /** The platform fetch, recording ticket requests. */
  readonly fetch: typeof fetch = (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (init?.method === 'POST' && new URL(url).pathname === '/api/auth/ws-ticket/') this.ticketRequests.push(performance.now());
    return globalThis.fetch(input, init);
  };

  constructor() {
    const wire = this;
    this.WebSocket = class RecordingWebSocket extends globalThis.WebSocket {
      private readonly record: Attempt;

      constructor(url: string) {
        super(url);
        this.record = { url: new URL(url), at: performance.now(), sent: [] };
        wire.attempts.push(this.record);
        this.addEventListener('message', (event: MessageEvent) => {
          if (typeof event.data === 'string') wire.frames.push(event.data);
        });
      }

      override send(data: Parameters<WebSocket['send']>[0]): void {
        if (typeof data === 'string') this.record.sent.push(data);
        super.send(data);
      }
    };
  }

  /** Index of each connection on which a `chat_message` frame with `clientId` was sent. */
  sentOn(clientId: string): number[] {
    return this.attempts.flatMap((attempt, index) =>
      attempt.sent.filter((text) => (JSON.parse(text) as { client_id?: string }).client_id === clientId).map(() => index),
    );
  }

  /** `last_seq` of each attempt's URL (undefined where absent). */
  lastSeqs(): Array<number | undefined> {
    return this.attempts.map(({ url }) => {
      const value = url.searchParams.get('last_seq');
      return value === null ? undefined : Number(value);
    });
  }
}

/** Re-checks conditions whenever something is recorded. */
class Watch {
  /** Every state change, when it happened and (chat sockets) the last delivered seq then. */
  readonly states: { state: ChatSocketState; at: number; seq?: number | undefined }[] = [];
  private readonly wakers = new Set<() => void>();

  constructor(readonly label: string) {}

  protected wake(): void {
    for (const waker of [...this.wakers]) waker();
  }

  protected describe(): string {
    return `states ${this.states.map((s) => s.state).join('→') || '(none)'}`;
  }

  /** Resolves once `check()` holds (checked now and after every recorded emission); rejects after `timeoutMs`. */
  until(what: string, check: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
    if (check()) return Promise.resolve();
    const stack = new Error('waited here').stack ?? '';
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(waker);
      };
      const waker = (): void => {
        if (!check()) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.label}: not ${what} within ${timeoutMs} ms; ${this.describe()}\n${stack}`));
      }, timeoutMs);
      this.wakers.add(waker);
    });
  }

  /** Index into `states` of the first `state` at or after `from`, or -1. */
  stateIndex(state: ChatSocketState, from = 0): number {
    return this.states.findIndex((entry, index) => index >= from && entry.state === state);
  }

  /** Resolves once the socket has reached `state` at or after `states[from]`. */
  reach(state: ChatSocketState, from = 0, timeoutMs = WAIT_MS): Promise<void> {
    return this.until(`${state} (after state #${from})`, () => this.stateIndex(state, from) >= 0, timeoutMs);
  }
}

/** Everything a ChatSocket emits, in order. */
export class ChatRecorder extends Watch {
  readonly events: ConversationEvent[] = [];
  readonly typing: UserTypingEvent[] = [];
  readonly errors: ErrorEvent[] = [];
  readonly receipts: ReadUpdatedEvent[] = [];
  removed: MemberRemovedEvent | undefined;
  closed: { code: number; reason: string } | undefined;

  constructor(
    readonly socket: ChatSocket,
    label: string,
  ) {
    super(label);
    socket.on('event', (event) => (this.events.push(event), this.wake()));
    socket.on('typing', (event) => (this.typing.push(event), this.wake()));
    socket.on('error', (event) => (this.errors.push(event), this.wake()));
    socket.on('receipt', (event) => (this.receipts.push(event), this.wake()));
    socket.on('removed', (event) => ((this.removed = event), this.wake()));
    socket.on('state', (state) => (this.states.push({ state, at: performance.now(), seq: socket.lastSeq }), this.wake()));
    socket.on('closed', (info) => ((this.closed = info), this.wake()));
  }

  seqs(): number[] {
    return this.events.map((event) => event.seq);
  }

  /** Resolves once an event with seq ≥ `seq` has been delivered. */
  reachSeq(seq: number, timeoutMs = WAIT_MS): Promise<void> {
    return this.until(`at seq ${seq}`, () => (this.socket.lastSeq ?? 0) >= seq, timeoutMs);
  }

  waitClosed(timeoutMs = WAIT_MS): Promise<{ code: number; reason: string }> {
    return this.until('closed', () => this.closed !== undefined, timeoutMs).then(() => this.closed!);
  }

  protected override describe(): string {
    const seqs = this.seqs();
    const tail = seqs.length > 12 ? `…${seqs.slice(-12).join(',')}` : seqs.join(',');
    return `${super.describe()}; ${seqs.length} events (seqs ${tail || 'none'}); ${this.typing.length} typing; errors ${JSON.stringify(this.errors)}; closed ${JSON.stringify(this.closed)}`;
  }
}

/** Everything a NotificationSocket emits, in order. */
export class NotificationRecorder extends Watch {
  readonly notifications: NotificationView[] = [];
  readonly reads: NotificationReadEvent[] = [];
  resyncs = 0;
  closed: { code: number; reason: string } | undefined;

  constructor(
    readonly socket: NotificationSocket,
    label: string,
  ) {
    super(label);
    socket.on('notification', (value) => (this.notifications.push(value), this.wake()));
    socket.on('read', (event) => (this.reads.push(event), this.wake()));
    socket.on('resync', () => (this.resyncs++, this.wake()));
    socket.on('state', (state) => (this.states.push({ state, at: performance.now() }), this.wake()));
    socket.on('closed', (info) => ((this.closed = info), this.wake()));
  }

  protected override describe(): string {
    return `${super.describe()}; notifications ${JSON.stringify(this.notifications.map((n) => [n.id, n.kind, n.count]))}; reads ${JSON.stringify(this.reads)}; ${this.resyncs} resyncs`;
  }
}

/** Where a list of seqs first departs from `from, from+1, …, to`, or undefined if it does not. */
export function seqProblem(seqs: readonly number[], from: number, to: number): string | undefined {
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== from + i) return `at index ${i}: expected seq ${from + i}, got ${seqs[i]} (…${seqs.slice(Math.max(0, i - 3), i + 4).join(',')}…)`;
  }
  if (seqs.length !== to - from + 1) return `${seqs.length} events, expected ${to - from + 1} (last ${seqs.at(-1)})`;
  return undefined;
}

/**
 * Resolves once `check()` holds: checked now and whenever one of the listeners `listen` attaches
 * is called (each attach returns its detach); rejects after `timeoutMs` naming `what` and `describe()`.
 */
export function untilEmitted(what: string, listen: (wake: () => void) => Array<() => void>, check: () => boolean, describe: () => string, timeoutMs = WAIT_MS): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      for (const off of stop) off();
    };
    const stop = listen(() => {
      if (!check()) return;
      done();
      resolve();
    });
    const timer = setTimeout(() => {
      done();
      reject(new Error(`not ${what} within ${timeoutMs} ms; ${describe()}`));
    }, timeoutMs);
  });
}

/** Polls `check` (bounded) for conditions no socket announces, such as a REST-visible state. */
export async function poll(what: string, check: () => Promise<boolean>, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** `promise`, or a rejection naming `what` if it is still pending after `timeoutMs` (a send that never settles). */
export async function bounded<T>(promise: Promise<T>, what: string, timeoutMs = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

export interface ClientUser {
  client: ChatClient;
  wire: Wire;
  id: number;
  username: string;
}

/** A registered user with a client of their own, whose WebSocket records what it sees. */
export async function newClientUser(baseUrl: string, options: Partial<ChatClientOptions> = {}): Promise<ClientUser> {
  const wire = new Wire();
  const client = new ChatClient({ baseUrl, WebSocket: wire.WebSocket, fetch: wire.fetch, ...options });
  const session = await client.register(randomName('cl'), 'correct horse battery');
  return { client, wire, id: session.user.id, username: session.user.username };
}
