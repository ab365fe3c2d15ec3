import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import type { AuthUser } from '../domain/auth-user.js';
import { conversationChannel } from '../redis/names.js';
import { memberPosition } from '../conversations/membership.js';
import { normalizeContent } from '../messages/content.js';
import { readEvents } from '../messages/event-log.js';
import type { MessageView } from '../contract/messages.js';
import { unavailable } from '../domain/errors.js';
import { encodeTyping } from './hub.js';
import { type ClientFrame, frameErrorEvent, parseFrame } from './protocol.js';
import type { ConversationRoom, MemberHandle } from './room.js';
import { CloseCode } from '../contract/socket-codes.js';
import { type EventSink, socketSink } from './sink.js';
import { openSocketSession, type SocketSession } from './socket-session.js';

/**
 * Frames queued behind the one being handled. At this many the socket stops reading (TCP
 * pushes back on the client) until the queue is half empty: nothing is dropped, and a
 * flooding client cannot grow the heap.
 */
const MAX_QUEUED_FRAMES = 64;
/**
 * Sends of one socket queued for storage but not yet committed. The next frame is read
 * meanwhile (the send batcher keeps their order), so a socket's sending rate is not bound by
 * one commit's latency; at this many it waits for the oldest.
 */
const MAX_SENDS_IN_FLIGHT = 32;
/** Typing "true" is forwarded at most this often per socket (see `typing()`). */
const TYPING_INTERVAL_MS = 1000;

const positiveId = (raw: string | undefined): number | null => {
  const id = raw !== undefined && /^[1-9]\d{0,15}$/.test(raw) ? Number(raw) : NaN;
  return Number.isSafeInteger(id) && id <= 2_147_483_647 ? id : null;
};

/**
 * One chat socket. Listeners are attached in the constructor, before any await, so no frame
 * is missed; frames that arrive while the socket is being set up wait in order, and frames
 * are then handled one at a time, so one client's frames take effect in the order it sent
 * them (sends are queued for storage in order without waiting for each other's commit).
 */
export class ChatConnection {
  private readonly queue: RawData[] = [];
  private busy = false;
  private closed = false;
  private user: AuthUser | null = null;
  private conversationId = 0;
  private room: ConversationRoom | undefined;
  private member: MemberHandle | undefined;
  private lastTypingAt = 0;
  private typingShown = false;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;
  private session: SocketSession | null = null;
  private readonly sendsInFlight = new Set<Promise<void>>();
  private readonly sink: EventSink;
  private readonly onTyping = (from: number, json: string) => {
    if (from !== this.user?.id) this.sink.send(json);
  };

  constructor(
    private readonly app: FastifyInstance,
    private readonly socket: WebSocket,
    request: FastifyRequest,
  ) {
    this.sink = socketSink(socket, {
      maxBufferedBytes: app.config.WS_MAX_BUFFERED_BYTES,
      onSlowConsumer: () => {
        app.metrics.slowConsumers.inc();
        app.log.info({ userId: this.user?.id, conversationId: this.conversationId }, 'chat socket closed as a slow consumer (4008)');
      },
    });
    socket.on('message', (data) => this.enqueue(data));
    socket.on('close', () => this.cleanup());
    socket.on('error', (error) => app.log.debug({ err: error }, 'chat socket error'));
    void this.start(request);
  }

  private async start(request: FastifyRequest): Promise<void> {
    const { app } = this;
    const query = request.query as Record<string, string | undefined>;
    const session = await openSocketSession(app, app.socketSlots, request, this.sink);
    if (!session) return this.cleanup();
    this.session = session;
    if (this.closed) return this.cleanup();
    this.user = { id: session.claims.userId, username: session.claims.username };
    const conversationId = positiveId((request.params as { id?: string }).id);
    if (conversationId === null) return this.close(CloseCode.forbidden, 'no such conversation');
    let fromSeq: number | undefined;
    if (query.last_seq !== undefined) {
      fromSeq = /^\d{1,15}$/.test(query.last_seq) ? Number(query.last_seq) : NaN;
      if (Number.isNaN(fromSeq)) return this.close(CloseCode.badRequest, 'last_seq: a non-negative integer');
    }
    this.conversationId = conversationId;
    try {
      // Membership and the seq it holds at, in one statement: the socket starts from that seq,
      // so a removal committed after the check is an event it replays (and closes at), never
      // one that slipped by before its room subscribed.
      const position = await memberPosition(app.database, this.user.id, conversationId);
      if (position === null) return this.close(CloseCode.forbidden, 'no such conversation');
      if (fromSeq !== undefined && position - fromSeq > app.config.MAX_REPLAY_EVENTS) {
        return this.close(CloseCode.tooFarBehind, 'too far behind: reload over REST, then reconnect with the new last_seq');
      }
      if (this.closed) return;
      const room = await app.rooms.acquire(conversationId, this.onTyping);
      this.room = room;
      if (this.closed) return this.cleanup();
      // A claimed last_seq beyond the checked seq is backed by no commit the client could have
      // seen before connecting: it is clamped, so it cannot skip a removal.
      const start = fromSeq === undefined ? position : Math.min(fromSeq, position);
      this.member = await room.join(this.sink, start, { userId: this.user.id, memberAt: position });
      app.metrics.openSockets.inc({ kind: 'chat' });
      if (this.closed) return this.cleanup();
      void this.drainQueue();
    } catch (error) {
      app.log.warn({ err: error, conversationId }, 'chat socket set-up failed');
      this.close(CloseCode.internal, 'service unavailable, reconnect later');
    }
  }

  private enqueue(data: RawData): void {
    this.queue.push(data);
    if (this.queue.length >= MAX_QUEUED_FRAMES) this.socket.pause();
    if (this.member) void this.drainQueue();
  }

  private async drainQueue(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    while (this.queue.length > 0 && !this.closed) {
      const data = this.queue.shift()!;
      if (this.queue.length === MAX_QUEUED_FRAMES / 2) this.socket.resume();
      await this.handle(data.toString());
    }
    this.busy = false;
  }

  protected async handle(text: string): Promise<void> {
    let frame: ClientFrame | undefined;
    try {
      frame = parseFrame(text);
      await this.dispatch(frame);
    } catch (error) {
      this.report(error, frame);
    }
  }

  /** The `error` event answering a frame that failed. */
  protected report(error: unknown, frame: ClientFrame | undefined): void {
    const extra = frame && 'client_id' in frame && frame.client_id ? { client_id: frame.client_id } : {};
    const { event, internal } = frameErrorEvent(error, extra);
    if (internal) this.app.log.error({ err: error }, 'chat frame failed');
    this.sink.send(event);
  }

  protected async dispatch(frame: ClientFrame): Promise<void> {
    const { app } = this;
    const user = this.user!;
    switch (frame.type) {
      case 'chat_message': {
        normalizeContent(frame.message, app.config.MAX_MESSAGE_LENGTH, 'message');
        await app.limitMessages(user.id);
        if (this.sendsInFlight.size >= MAX_SENDS_IN_FLIGHT) await Promise.race(this.sendsInFlight);
        // Queued now, in frame order; its outcome arrives as chat.message (or an error event).
        const send: Promise<void> = app.messages
          .send(user, this.conversationId, frame.message, frame.client_id, frame.reply_to)
          .then(
            // A client_id stored before: this socket hears its chat.message again (the others heard it then).
            ({ message, created }) => (created ? undefined : this.resendOriginal(message)),
            (error: unknown) => this.report(error, frame),
          )
          .finally(() => this.sendsInFlight.delete(send));
        this.sendsInFlight.add(send);
        return;
      }
      case 'edit_message':
        await app.limitWrites('edit', user.id);
        // After this socket's earlier sends: its frames take effect in the order it sent them.
        await Promise.all(this.sendsInFlight);
        await app.messages.edit(user, this.conversationId, frame.message_id, frame.content);
        return;
      case 'delete_message':
        await app.limitWrites('edit', user.id);
        await Promise.all(this.sendsInFlight);
        app.removeStoredFiles(await app.messages.delete(user, this.conversationId, frame.message_id));
        return;
      case 'react':
      case 'unreact':
        // Answered by the reaction event (to every socket), or by nothing when it changed nothing.
        await app.limitWrites('edit', user.id);
        await Promise.all(this.sendsInFlight);
        await (frame.type === 'react' ? app.messages.react : app.messages.unreact)(user, this.conversationId, frame.message_id, frame.emoji);
        return;
      case 'typing':
        return this.typing(frame.is_typing);
      case 'read':
        // After this socket's earlier sends, so a read of a seq it just sent is not clamped short.
        // Answered by the read.updated receipt (to every socket of the conversation, this one
        // too) where receipts are on; otherwise, and for a marker that does not move, by nothing.
        await Promise.all(this.sendsInFlight);
        await app.reads.read(user, this.conversationId, frame.seq);
        return;
    }
  }

  /**
   * The `chat.message` event of a message stored earlier, as the event log renders it (same
   * id and seq), to this socket only: a client that retries a send it never heard back about
   * hears it now.
   */
  private async resendOriginal(message: MessageView): Promise<void> {
    try {
      const [event] = await readEvents(this.app.database, this.app.links, this.conversationId, message.seq - 1, 1);
      if (event && !this.closed) this.sink.send(JSON.stringify(event));
    } catch (error) {
      this.report(error, undefined);
    }
  }

  /**
   * At most one "true" per interval is forwarded, and "false" only when "true" was: a "true"
   * that comes too soon waits for the end of the interval (a "false" meanwhile cancels it), so
   * the others see the latest state, a little late at worst, and alternating costs one pair.
   */
  private async typing(isTyping: boolean): Promise<void> {
    clearTimeout(this.typingTimer);
    this.typingTimer = undefined;
    if (!isTyping) {
      if (!this.typingShown) return;
      this.typingShown = false;
      return this.publishTyping(false);
    }
    const wait = this.lastTypingAt + TYPING_INTERVAL_MS - Date.now();
    if (wait <= 0) {
      this.lastTypingAt = Date.now();
      this.typingShown = true;
      return this.publishTyping(true);
    }
    if (this.typingShown) return;
    this.typingTimer = setTimeout(() => {
      this.typingTimer = undefined;
      if (this.closed) return;
      this.lastTypingAt = Date.now();
      this.typingShown = true;
      this.publishTyping(true).catch((error: unknown) => this.report(error, undefined));
    }, wait);
  }

  private async publishTyping(isTyping: boolean): Promise<void> {
    const user = this.user!;
    const json = JSON.stringify({ type: 'user.typing', user: user.username, is_typing: isTyping, conversation_id: this.conversationId });
    // Live only, so a bus that cannot publish (broker down) is the client's `unavailable`, not a bug.
    await this.app.bus.publish(conversationChannel(this.conversationId), encodeTyping(user.id, json)).catch((error: unknown) => {
      throw unavailable('bus', error);
    });
  }

  private close(code: number, reason: string): void {
    this.sink.close(code, reason);
    this.cleanup();
  }

  /** Idempotent: set-up steps that finish after the socket closed call it again to undo themselves. */
  private cleanup(): void {
    this.closed = true;
    this.queue.length = 0;
    clearTimeout(this.typingTimer);
    this.session?.end();
    if (this.member) {
      this.member.leave();
      this.member = undefined;
      this.app.metrics.openSockets.dec({ kind: 'chat' });
    }
    if (this.room) {
      this.room = undefined;
      this.app.rooms.release(this.conversationId, this.onTyping);
    }
  }
}
