import type { ChatServerEvent, ConversationEvent, ErrorEvent, MemberRemovedEvent, PresenceEvent, ReadUpdatedEvent, UserTypingEvent } from './generated/contract.js';
import type { ConversationView, MemberView, MessageView } from './generated/contract.js';
import { Emitter } from './emitter.js';
import { type ClosedInfo, ReconnectingSocket, type ReconnectOptions, type SocketState, webSocketBase } from './reconnecting-socket.js';

export interface ChatSocketOptions extends ReconnectOptions {
  baseUrl: string;
  /**
   * A fresh single-use ticket for every (re)connect (`POST /api/auth/ws-ticket/`), so no
   * long-lived token appears in a URL. An empty one connects without credentials (the service
   * then closes with 4401); a rejection with `statusCode` 401 ends the socket (4401).
   */
  ticket: () => Promise<string>;
  conversationId: number;
  /**
   * Resume point: events after it are replayed first. Pass the conversation's `last_seq`
   * read before loading history, and nothing between the two is missed.
   */
  lastSeq?: number;
  /** The caller's user id: tells a `member.removed` about them (then the 4403 close means "removed"). */
  userId?: number;
  /**
   * After a 4409 close (`last_seq` more than MAX_REPLAY_EVENTS behind): reads the newest
   * state over REST; the socket reconnects from its `lastSeq` and emits `reset` with it.
   * Without it, a 4409 ends the socket (`closed` with 4409).
   */
  reload?: () => Promise<ChatReset>;
}

/** What a reload after a 4409 read over REST: the conversation, its newest page, and the seq the socket resumes from. */
export interface ChatReset {
  conversation: ConversationView;
  /** The newest page of messages, in id order: it replaces whatever the caller held. */
  messages: MessageView[];
  /** The conversation's `last_seq` read before the page: events after it follow. */
  lastSeq: number;
  /** Every member, when the reload read them too (a `LiveConversation` does). */
  members?: MemberView[];
}

/** A send's options over the socket. */
export interface SocketSendOptions {
  clientId?: string;
  /** The id of the message of this conversation it answers. */
  replyTo?: number;
}

interface ChatSocketEvents {
  /** Conversation events (messages and membership), each exactly once and in `seq` order, across reconnects. */
  event: ConversationEvent;
  typing: UserTypingEvent;
  /** A member's read marker moved (live only, no `seq`; the caller's own other devices included). */
  receipt: ReadUpdatedEvent;
  /**
   * A member came online or went offline (live only, no `seq`; never about the caller, and only
   * in conversations of up to the service's PRESENCE_MAX_MEMBERS). What a break missed is
   * not replayed: `PresenceStore` reads it again over REST on every (re)open.
   */
  presence: PresenceEvent;
  /**
   * The caller was removed from the conversation (or left it): the `member.removed` about them
   * came, then the service closed the socket with 4403. The socket does not reconnect.
   */
  removed: MemberRemovedEvent;
  /** The service's answers to frames that were not sends (those reject their promise instead). */
  error: ErrorEvent;
  state: ChatSocketState;
  closed: ClosedInfo;
  /**
   * The socket was too far behind to be replayed (4409) and reloaded over REST: drop every
   * message held and show `messages`; events continue from `lastSeq`, with no gap.
   */
  reset: ChatReset;
}

/** A socket's state, plus `removed`: closed for good after the caller's own `member.removed`. */
export type ChatSocketState = SocketState | 'removed';

/** The refusal of a send: the service's `error` event for it. */
export class SendError extends Error {
  constructor(readonly event: ErrorEvent) {
    super(event.message);
    this.name = 'SendError';
  }
}

interface PendingSend {
  frame: string;
  resolve(message: MessageView): void;
  reject(error: Error): void;
}

const newClientId = (): string => globalThis.crypto.randomUUID();
/** API.md: `client_id` is a string of up to 64 characters. */
const MAX_CLIENT_ID = 64;
/** The close code of a frame over the service's size limit. */
const TOO_BIG = 1009;
/** The close code for "not a member (any more)". */
const FORBIDDEN = 4403;
/** The close code for "`last_seq` too far behind to replay". */
const TOO_FAR_BEHIND = 4409;

/**
 * `/ws/chat/{id}/` for one conversation. Delivers conversation events in `seq` order with no
 * gap and no duplicate: it remembers the last `seq` it delivered, reconnects with `last_seq`,
 * drops what it already delivered, and on a gap reconnects so the service replays it.
 * Sends carry a `client_id` and are repeated after a reconnect until their `chat.message`
 * arrives; the service stores each `client_id` once.
 */
export class ChatSocket extends Emitter<ChatSocketEvents> {
  readonly conversationId: number;
  private seq: number | undefined;
  private readonly socket: ReconnectingSocket;
  private readonly pending = new Map<string, PendingSend>();
  /** Edits and deletes made while disconnected, sent in order once open. */
  private outbox: string[] = [];
  /** The furthest read marker asked for while disconnected (only forward matters: one is enough). */
  private unsentRead: number | undefined;
  private readMarker = 0;
  private readonly userId: number | undefined;
  private removal: MemberRemovedEvent | undefined;
  private gone = false;
  /** A 4409 came: the next connect reloads over REST first. */
  private behind = false;

  constructor(options: ChatSocketOptions) {
    super();
    this.conversationId = options.conversationId;
    this.seq = options.lastSeq;
    this.userId = options.userId;
    const base = `${webSocketBase(options.baseUrl)}/ws/chat/${options.conversationId}/`;
    this.socket = new ReconnectingSocket(async () => {
      if (this.behind) await this.resync(options.reload);
      const query = new URLSearchParams();
      const ticket = await options.ticket();
      if (ticket) query.set('ticket', ticket);
      if (this.seq !== undefined) query.set('last_seq', String(this.seq));
      return `${base}?${query}`;
    }, options);
    this.socket.on('state', (state) => this.emit('state', state));
    this.socket.on('open', () => this.flush());
    this.socket.on('message', (text) => this.receive(text));
    this.socket.on('dropped', (info) => {
      // 1009: a frame was over the service's size limit. Resent, it would close every new
      // connection the same way: give up the largest pending send, which is over the limit too.
      if (info.code === TOO_BIG) this.refuseLargestPending();
      // Resuming from this seq will never be replayed: the next connect reloads first.
      if (info.code === TOO_FAR_BEHIND) this.behind = true;
    });
    this.socket.on('closed', (info) => {
      for (const send of this.pending.values()) send.reject(new Error(`socket closed (${info.code} ${info.reason})`));
      this.pending.clear();
      this.outbox = [];
      this.unsentRead = undefined;
      if (info.code === FORBIDDEN && this.removal) {
        this.gone = true;
        this.emit('state', 'removed');
        this.emit('removed', this.removal);
      }
      this.emit('closed', info);
    });
    this.socket.start();
  }

  /** The `seq` of the last event delivered: where a new socket would resume. */
  get lastSeq(): number | undefined {
    return this.seq;
  }

  /** `removed`: closed for good because the caller is no longer a member (see the `removed` event). */
  get state(): ChatSocketState {
    return this.gone ? 'removed' : this.socket.state;
  }

  /** The `member.removed` event about the caller, once it came (the socket is closing or closed for good). */
  get removed(): MemberRemovedEvent | undefined {
    return this.removal;
  }

  /**
   * Sends a message; resolves with it once the service has stored and published it (its
   * `chat.message` came back), rejects with `SendError` if the service refused it.
   */
  send(content: string, options: string | SocketSendOptions = {}): Promise<MessageView> {
    const { clientId = newClientId(), replyTo } = typeof options === 'string' ? { clientId: options } : options;
    return new Promise((resolve, reject) => {
      // Closed for good: nothing would ever send it, or settle the promise.
      if (this.socket.state === 'closed') return reject(new Error('socket closed'));
      // The service answers a bad client_id without it, so the promise could never settle.
      if (clientId.length < 1 || clientId.length > MAX_CLIENT_ID) return reject(new RangeError(`clientId: 1 to ${MAX_CLIENT_ID} characters`));
      const frame = JSON.stringify({ type: 'chat_message', message: content, client_id: clientId, ...(replyTo === undefined ? {} : { reply_to: replyTo }) });
      this.pending.set(clientId, { frame, resolve, reject });
      this.socket.send(frame);
    });
  }

  edit(messageId: number, content: string): void {
    this.post(JSON.stringify({ type: 'edit_message', message_id: messageId, content }));
  }

  delete(messageId: number): void {
    this.post(JSON.stringify({ type: 'delete_message', message_id: messageId }));
  }

  /** Reacts with one emoji (the `react` frame; idempotent). Everyone, the caller too, gets `reaction.added`. */
  react(messageId: number, emoji: string): void {
    this.post(JSON.stringify({ type: 'react', message_id: messageId, emoji }));
  }

  /** Takes the reaction back (the `unreact` frame; idempotent): `reaction.removed` follows. */
  unreact(messageId: number, emoji: string): void {
    this.post(JSON.stringify({ type: 'unreact', message_id: messageId, emoji }));
  }

  /** Live only: dropped while disconnected, since a late "typing" would be wrong. */
  typing(isTyping: boolean): void {
    this.socket.send(JSON.stringify({ type: 'typing', is_typing: isTyping }));
  }

  /**
   * Moves the caller's read marker forward to `seq` (the `read` frame; no answer comes, but
   * the others get `read.updated`). Asked while disconnected, the furthest one is sent on open.
   */
  read(seq: number): void {
    if (!Number.isInteger(seq) || seq < 0) throw new RangeError('seq: a non-negative integer');
    if (seq <= this.readMarker) return;
    this.readMarker = seq;
    if (!this.socket.send(JSON.stringify({ type: 'read', seq }))) this.unsentRead = seq;
  }

  /** Skips any remaining backoff (the browser came back online, say). */
  reconnectNow(): void {
    this.socket.reconnectNow();
  }

  close(): void {
    this.socket.close();
  }

  private post(frame: string): void {
    if (!this.socket.send(frame)) this.outbox.push(frame);
  }

  /** Reloads over REST after a 4409 and moves the resume point to what it read. */
  private async resync(reload: ChatSocketOptions['reload']): Promise<void> {
    // No way to reload: resuming is impossible, so the socket ends (see ReconnectingSocket).
    if (!reload) throw Object.assign(new Error('too far behind and no reload'), { closeCode: TOO_FAR_BEHIND });
    const reset = await reload();
    this.behind = false;
    this.seq = reset.lastSeq;
    this.emit('reset', reset);
  }

  private refuseLargestPending(): void {
    let largest: [string, PendingSend] | undefined;
    for (const entry of this.pending) if (!largest || entry[1].frame.length > largest[1].frame.length) largest = entry;
    if (!largest) return;
    const [clientId, send] = largest;
    this.pending.delete(clientId);
    send.reject(new SendError({ type: 'error', code: 'invalid_frame', message: 'message too large: the service closed the socket (1009)', client_id: clientId }));
  }

  private flush(): void {
    for (const send of this.pending.values()) this.socket.send(send.frame);
    const frames = this.outbox;
    this.outbox = [];
    for (const frame of frames) this.post(frame);
    const read = this.unsentRead;
    this.unsentRead = undefined;
    if (read !== undefined && !this.socket.send(JSON.stringify({ type: 'read', seq: read }))) this.unsentRead = read;
  }

  private receive(text: string): void {
    let event: ChatServerEvent;
    try {
      event = JSON.parse(text) as ChatServerEvent;
    } catch {
      return;
    }
    switch (event.type) {
      case 'user.typing':
        this.emit('typing', event);
        return;
      case 'read.updated':
        if (event.user_id === this.userId) this.readMarker = Math.max(this.readMarker, event.last_read_seq);
        this.emit('receipt', event);
        return;
      case 'presence':
        this.emit('presence', event);
        return;
      case 'error': {
        const send = event.client_id === undefined ? undefined : this.pending.get(event.client_id);
        if (send && event.client_id !== undefined) {
          this.pending.delete(event.client_id);
          send.reject(new SendError(event));
        } else {
          this.emit('error', event);
        }
        return;
      }
      default:
        this.deliver(event);
    }
  }

  private deliver(event: ConversationEvent): void {
    if (this.seq !== undefined) {
      if (event.seq <= this.seq) {
        // A resent send answered with its original event (delivered before, or skipped by a reload).
        if (event.type === 'chat.message') this.settleSend(event.message);
        return;
      }
      if (event.seq > this.seq + 1) {
        // Never expected from the service, but cheap to make right: it replays from last_seq.
        this.socket.reconnectNow();
        return;
      }
    }
    this.seq = event.seq;
    if (event.type === 'chat.message') this.settleSend(event.message);
    if (event.type === 'member.removed' && event.user.id === this.userId) this.removal = event;
    // Sending counts as reading up to one's own message (the service moves the marker too).
    if (event.type === 'chat.message' && event.message.sender_id === this.userId) this.readMarker = Math.max(this.readMarker, event.seq);
    this.emit('event', event);
  }

  private settleSend(message: MessageView): void {
    const send = message.client_id === null ? undefined : this.pending.get(message.client_id);
    if (!send || message.client_id === null) return;
    this.pending.delete(message.client_id);
    send.resolve(message);
  }
}
