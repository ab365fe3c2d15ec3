import type { EncodedEvent } from '../messages/event-codec.js';
import { REPLAY_PAGE, type RoomLogger, type RoomSource } from './room-source.js';
import { CloseCode } from '../contract/socket-codes.js';
import type { EventSink } from './sink.js';

/** A socket still catching up when this many live events queue behind its replay is closed. */
export const MAX_PENDING_PER_MEMBER = 10_000;

export interface ReplayerOptions {
  conversationId: number;
  /**
   * The socket's user: a `member.removed` event about them is the last event the socket gets,
   * then it is closed with 4403 (live and replayed alike).
   */
  userId?: number;
  /**
   * A seq at which the user was a member: removals up to it were undone by a later re-add, so
   * replaying one of those (a resume from before it) does not close the socket.
   */
  memberAt?: number;
  source: Pick<RoomSource, 'readEvents'>;
  logger: RoomLogger;
  /** The newest seq the conversation's sequencer has delivered: where a replay ends. */
  head(): number;
  /** Called once if the replayer gives up on its socket (gone, too far behind, replay failed); not after `leave()`. */
  onGone(): void;
  /** How many events one catch-up (a resume, or a gap repair) sent from the log and the queue (metrics). */
  onReplayed?(count: number): void;
}

/**
 * One socket's feed of a conversation. The socket has been sent every event up to
 * `lastSent`, in order, each once. While it is behind the sequencer, the replayer reads the
 * missing events from the log, paced by the sink's `drained()`, and queues the live events
 * that arrive meanwhile (at most `MAX_PENDING_PER_MEMBER`, else the socket is closed with
 * 4008); once caught up, live events go straight to the socket.
 */
export class Replayer {
  private replaying = false;
  /** Events sent by the catch-up under way. */
  private replayed = 0;
  private pending: EncodedEvent[] = [];
  private gone = false;

  constructor(
    private readonly sink: EventSink,
    public lastSent: number,
    private readonly options: ReplayerOptions,
  ) {}

  /** Starts replaying if the socket is behind the sequencer. */
  start(): void {
    if (this.lastSent < this.options.head()) void this.catchUp();
  }

  /**
   * A live event from the sequencer (called in seq order). True when it went to the socket
   * now; `encoded` is the event as sent, shared by every socket of the room.
   */
  offer(event: EncodedEvent, encoded: () => Buffer): boolean {
    if (this.gone) return false;
    if (this.replaying) {
      this.queue(event);
    } else if (event.seq === this.lastSent + 1) {
      if (this.sink.send(encoded())) {
        this.lastSent = event.seq;
        this.closeIfRemoved(event);
        return true;
      }
      this.stop();
    } else if (event.seq > this.lastSent + 1) {
      // The socket claimed a seq this replica had not seen yet and the room has now passed it.
      this.queue(event);
      void this.catchUp();
    }
    return false;
  }

  /** The socket left: nothing more is sent, a running replay stops. */
  leave(): void {
    this.gone = true;
    this.pending = [];
  }

  private stop(code?: number, reason = ''): void {
    if (this.gone) return;
    this.leave();
    if (code !== undefined) this.sink.close(code, reason);
    this.options.onGone();
  }

  /** After the event went out: if it removed this socket's user, nothing follows it. */
  private closeIfRemoved(event: EncodedEvent): boolean {
    const { userId, memberAt = 0 } = this.options;
    if (event.removedUserId === undefined || event.removedUserId !== userId || event.seq <= memberAt) return false;
    this.stop(CloseCode.forbidden, 'removed from the conversation');
    return true;
  }

  private queue(event: EncodedEvent): void {
    this.pending.push(event);
    if (this.pending.length > MAX_PENDING_PER_MEMBER) this.stop(CloseCode.slowConsumer, 'too far behind: reconnect with last_seq');
  }

  /**
   * Sends one replayed event once the socket's buffer has room. A page of history goes out
   * faster than any client reads it, so replay is paced by the reader; sending it all at once
   * would take a healthy reader for a slow consumer (4008). False when the socket is gone.
   */
  private async replay(event: EncodedEvent): Promise<boolean> {
    await this.sink.drained();
    if (this.gone || !this.sink.send(event.json)) return false;
    this.lastSent = event.seq;
    this.replayed += 1;
    return !this.closeIfRemoved(event);
  }

  /** Replays from the log until the socket reaches the sequencer, then hands it to live delivery. */
  private async catchUp(): Promise<void> {
    if (this.replaying) return;
    const { source, conversationId, logger } = this.options;
    this.replaying = true;
    this.replayed = 0;
    try {
      for (;;) {
        // Live events queued meanwhile that continue the socket's sequence go out directly.
        this.pending = this.pending.filter((event) => event.seq > this.lastSent);
        this.pending.sort((a, b) => a.seq - b.seq);
        while (this.pending[0]?.seq === this.lastSent + 1) {
          if (!(await this.replay(this.pending.shift()!))) return this.stop();
        }
        if (this.lastSent >= this.options.head() && this.pending.length === 0) break;
        const events = await source.readEvents(conversationId, this.lastSent, REPLAY_PAGE);
        if (this.gone) return;
        for (const event of events) {
          if (event.seq !== this.lastSent + 1) continue;
          if (!(await this.replay(event))) return this.stop();
        }
        if (events.length === 0) {
          if (this.pending.length === 0) break;
          // The log behind what pub/sub delivered cannot happen after commit; skip ahead
          // rather than spin, and say so.
          logger.error({ conversationId, lastSent: this.lastSent }, 'replay found no events');
          this.lastSent = this.pending[0]!.seq - 1;
        }
        await this.sink.drained();
      }
    } catch (error) {
      logger.warn({ err: error, conversationId }, 'replay failed; closing socket');
      this.stop(CloseCode.internal, 'replay failed: reconnect with last_seq');
    } finally {
      this.replaying = false;
      this.options.onReplayed?.(this.replayed);
    }
  }
}
