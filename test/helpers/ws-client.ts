/**
 * A small WebSocket test client over `ws`: connects (token in the query or the Authorization
 * header, optional `last_seq`), keeps every event it receives, and waits for events with
 * bounded timeouts that fail with what was received instead. No fixed sleeps.
 */
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import type { MessageView } from '../../src/contract/messages.js';

/** The message object of API.md (with the fields the service adds), as the service types it. */
export type MessageObject = MessageView;

export interface NotificationObject {
  id: number;
  message: string;
  is_read: boolean;
  timestamp: string;
  kind: string;
  conversation_id: number | null;
  message_id: number | null;
  count: number;
}

interface Sequenced {
  seq: number;
  conversation_id: number;
}

export type ConversationEvent =
  | (Sequenced & { type: 'chat.message'; message: MessageObject })
  | (Sequenced & { type: 'message.edited'; message: { id: number; content: string; is_edited: boolean } })
  | (Sequenced & { type: 'message.deleted'; message_id: number })
  | (Sequenced & { type: 'attachment.added'; message_id: number; attachment: unknown })
  | (Sequenced & { type: 'reaction.added' | 'reaction.removed'; message_id: number; emoji: string; user: string; user_id: number })
  | (Sequenced & { type: 'member.added'; users: EventUser[]; by: EventUser })
  | (Sequenced & { type: 'member.removed'; user: EventUser; by: EventUser })
  | (Sequenced & { type: 'member.role'; user: EventUser; role: string })
  | (Sequenced & { type: 'conversation.updated'; conversation: { id: number; title: string | null } });

interface EventUser {
  id: number;
  username: string;
}

/** Server → client events, as API.md describes them. Received JSON is cast, not validated: assertions check shapes. */
export type ServerEvent =
  | ConversationEvent
  | { type: 'user.typing'; user: string; is_typing: boolean; conversation_id?: number }
  | { type: 'read.updated'; conversation_id: number; user: string; user_id: number; last_read_seq: number }
  | { type: 'presence'; conversation_id: number; user: string; user_id: number; status: 'online' | 'offline'; last_seen_at: string | null }
  | { type: 'error'; code: string; message: string; client_id?: string; retry_after?: number }
  | { type: 'notification'; message: NotificationObject }
  | { type: 'notification.read'; id?: number; all?: boolean };

export type EventOf<K extends ServerEvent['type']> = Extract<ServerEvent, { type: K }>;

/** A type guard for one event type: `client.waitFor(ofType('chat.message'))`. */
export const ofType =
  <K extends ServerEvent['type']>(type: K) =>
  (event: ServerEvent): event is EventOf<K> =>
    event.type === type;

export const isConversationEvent = (event: ServerEvent): event is ConversationEvent =>
  'seq' in event && typeof event.seq === 'number';

/** Default bound on any wait: generous, because CI runs several replicas on two cores. */
export const WAIT_MS = 15_000;

export interface ConnectOptions {
  token?: string;
  /** Send the token as `Authorization: Bearer` instead of `?token=`. */
  header?: boolean;
  lastSeq?: number;
  /** Extra query parameters. */
  query?: Record<string, string>;
  /** Names the client in failure messages. */
  label?: string;
}

interface Waiter {
  match(event: ServerEvent): boolean;
  resolve(event: ServerEvent): void;
  reject(error: Error): void;
}

let syncCounter = 0;

export class WsClient {
  /** Every parsed event, in arrival order. */
  readonly events: ServerEvent[] = [];
  /** The raw text of each event (same index as `events`). */
  readonly raw: string[] = [];
  /** Resolves with the close code and reason when the socket closes, however it closes. */
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly label: string;
  private readonly waiters = new Set<Waiter>();
  private closeInfo: { code: number; reason: string } | undefined;
  private tcp: Socket | undefined;

  private constructor(
    readonly ws: WebSocket,
    label: string,
  ) {
    this.label = label;
    ws.on('upgrade', (response) => {
      this.tcp = response.socket;
    });
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? `<binary ${Buffer.from(data as Buffer).length} bytes>` : data.toString();
      let event: ServerEvent;
      try {
        event = JSON.parse(text) as ServerEvent;
      } catch {
        event = { type: 'error', code: 'client_saw_non_json', message: text.slice(0, 200) };
      }
      this.events.push(event);
      this.raw.push(text);
      for (const waiter of [...this.waiters]) {
        if (waiter.match(event)) {
          this.waiters.delete(waiter);
          waiter.resolve(event);
        }
      }
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const waiter of [...this.waiters]) {
          this.waiters.delete(waiter);
          waiter.reject(new Error(`${this.label}: socket closed (${code} ${reason.toString()}) while waiting`));
        }
        resolve(this.closeInfo);
      });
    });
    // Errors are followed by close; a failed handshake rejects `connect` instead.
    ws.on('error', () => {});
  }

  /**
   * Opens a socket and resolves once the handshake is complete (the server may still close it
   * at once, e.g. with 4401: see `closed`). Rejects if the handshake itself fails.
   */
  static connect(url: string, options: ConnectOptions = {}): Promise<WsClient> {
    const target = new URL(url);
    if (options.token !== undefined && !options.header) target.searchParams.set('token', options.token);
    if (options.lastSeq !== undefined) target.searchParams.set('last_seq', String(options.lastSeq));
    for (const [name, value] of Object.entries(options.query ?? {})) target.searchParams.set(name, value);
    const headers: Record<string, string> = {};
    if (options.token !== undefined && options.header) headers.authorization = `Bearer ${options.token}`;
    const ws = new WebSocket(target, { headers, handshakeTimeout: WAIT_MS });
    const client = new WsClient(ws, options.label ?? `${target.pathname}@${target.port}`);
    return new Promise((resolve, reject) => {
      const onOpen = (): void => {
        ws.off('error', onError);
        resolve(client);
      };
      const onError = (error: Error): void => {
        ws.off('open', onOpen);
        reject(new Error(`${client.label}: connect failed: ${error.message}`));
      };
      ws.once('open', onOpen);
      ws.once('error', onError);
    });
  }

  /** The close code alone (see `closed`). */
  get closeCode(): Promise<number> {
    return this.closed.then((info) => info.code);
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Objects are sent as JSON text, strings as text frames, Buffers as binary frames. */
  send(frame: unknown): void {
    if (Buffer.isBuffer(frame)) this.ws.send(frame, { binary: true });
    else this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame), { binary: false });
  }

  /**
   * Resolves with the first event (already received or still to come, from index `from`)
   * matching `predicate`; rejects after `timeoutMs`, or if the socket closes first, with a
   * message listing what was received.
   */
  waitFor<T extends ServerEvent>(predicate: (event: ServerEvent) => event is T, timeoutMs?: number, from?: number): Promise<T>;
  waitFor(predicate: (event: ServerEvent) => boolean, timeoutMs?: number, from?: number): Promise<ServerEvent>;
  waitFor(predicate: (event: ServerEvent) => boolean, timeoutMs = WAIT_MS, from = 0): Promise<ServerEvent> {
    for (let i = from; i < this.events.length; i++) {
      const event = this.events[i]!;
      if (predicate(event)) return Promise.resolve(event);
    }
    if (this.closeInfo) {
      return Promise.reject(new Error(`${this.label}: socket already closed (${this.closeInfo.code}); received ${this.describe()}`));
    }
    const stack = new Error('waited here').stack ?? '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`${this.label}: no matching event within ${timeoutMs} ms; received ${this.describe()}\n${stack}`));
      }, timeoutMs);
      const waiter: Waiter = {
        match: predicate,
        resolve: (event) => {
          clearTimeout(timer);
          resolve(event);
        },
        reject: (error) => {
          clearTimeout(timer);
          error.message += `; received ${this.describe()}`;
          reject(error);
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Resolves once `count` events match `predicate` (bounded), with those events. */
  async waitForCount<T extends ServerEvent>(predicate: (event: ServerEvent) => event is T, count: number, timeoutMs = WAIT_MS): Promise<T[]> {
    let seen = 0;
    await this.waitFor((event) => predicate(event) && ++seen >= count, timeoutMs);
    return this.events.filter(predicate);
  }

  /** Resolves once a conversation event with `seq` ≥ `seq` has arrived. */
  waitForSeq(seq: number, timeoutMs = WAIT_MS): Promise<ConversationEvent> {
    return this.waitFor((event): event is ConversationEvent => isConversationEvent(event) && event.seq >= seq, timeoutMs);
  }

  /**
   * A round trip through the chat socket's frame queue: frames are handled only once the
   * socket has joined its room, so when the answer to this deliberately unknown frame type
   * arrives, the socket is receiving live events. Its error events are left out of `errors()`.
   */
  async sync(timeoutMs = WAIT_MS): Promise<void> {
    const marker = `__sync_${++syncCounter}__`;
    this.send({ type: marker });
    await this.waitFor((event) => event.type === 'error' && event.message.includes(marker), timeoutMs);
  }

  /** Conversation events (those with a seq), in arrival order. */
  conversationEvents(): ConversationEvent[] {
    return this.events.filter(isConversationEvent);
  }

  /** Error events other than `sync()` answers. */
  errors(): EventOf<'error'>[] {
    return this.events.filter(ofType('error')).filter((event) => !/__sync_\d+__/.test(event.message));
  }

  /** Stops reading from the TCP socket: the server's writes pile up in kernel and server buffers. */
  pauseReading(): void {
    if (!this.tcp) throw new Error(`${this.label}: no TCP socket`);
    this.tcp.pause();
  }

  resumeReading(): void {
    this.tcp?.resume();
  }

  /** Closes (1000) and resolves once closed. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState !== WebSocket.CLOSING) this.ws.close(1000);
    await this.closed;
  }

  terminate(): void {
    this.ws.terminate();
  }

  /** The last events received, for failure messages. */
  describe(last = 12): string {
    const state = this.closeInfo ? `closed ${this.closeInfo.code}` : 'open';
    const tail = this.raw.slice(-last).map((text) => (text.length > 300 ? `${text.slice(0, 300)}…` : text));
    return `${this.events.length} events (${state}), last ${tail.length}:\n  ${tail.join('\n  ')}`;
  }
}

/** `/ws/chat/{id}/` on a replica. */
export const chatUrl = (wsUrl: string, conversationId: number | string): string => `${wsUrl}/ws/chat/${conversationId}/`;
/** `/ws/notifications/` on a replica. */
export const notificationsUrl = (wsUrl: string): string => `${wsUrl}/ws/notifications/`;
