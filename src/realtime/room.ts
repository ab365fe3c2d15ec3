import type { EncodedEvent } from '../messages/event-codec.js';
import { Replayer } from './replayer.js';
import type { RoomLogger, RoomSource } from './room-source.js';
import type { Cancel, Scheduler } from './scheduler.js';
import { Sequencer } from './sequencer.js';
import type { EventSink } from './sink.js';

export type MemberHandle = { leave(): void };

/**
 * Sockets an event goes to in one turn of the event loop. A room with more hands each event
 * to this many, then yields (the scheduler's 0 ms: setImmediate), so one event to a
 * conversation of thousands does not hold up every other room of the replica: about 2 ms of
 * socket writes per turn. 64 was tried against it, alternating builds in the crowd bench
 * (small conversations at 200 msg/s beside a 1,000-member one at 20 msg/s), three runs each:
 * the small ones' p99 beside the crowd read 26, 24, 27 ms with 256 and 29, 38, 29 ms with 64.
 * No difference that the machine's noise does not swamp, so the larger batch stays.
 */
export const BROADCAST_BATCH = 256;

export interface RoomOptions {
  conversationId: number;
  source: RoomSource;
  logger: RoomLogger;
  scheduler: Scheduler;
  /** Live events that went straight to sockets (not replays), with their publish time. */
  onDelivered?(count: number, publishedAt: number | undefined): void;
  /** Events one socket's catch-up replayed (see `ReplayerOptions.onReplayed`). */
  onReplayed?(count: number): void;
}

/**
 * One conversation on one replica: its sequencer puts the bus's events in `seq` order, and
 * each local socket's replayer hands them on, so every socket gets every event once, in order.
 */
export class ConversationRoom {
  readonly conversationId: number;
  private readonly sequencer: Sequencer;
  private readonly members = new Set<Replayer>();
  /** Events waiting for a batched broadcast under way to end (seq order is kept). */
  private readonly outbox: EncodedEvent[] = [];
  private delivering = false;
  private step: Cancel | undefined;
  private closed = false;

  constructor(private readonly options: RoomOptions) {
    this.conversationId = options.conversationId;
    const { conversationId, source, logger, scheduler } = options;
    this.sequencer = new Sequencer({ conversationId, source, logger, scheduler, deliver: (event) => this.broadcast(event) });
  }

  get size(): number {
    return this.members.size;
  }

  /** The newest seq delivered; -1 until started. */
  get head(): number {
    return this.sequencer.head;
  }

  /** Called once the bus subscription is active: from then on no event can slip past. */
  start(): Promise<void> {
    return this.sequencer.start();
  }

  /** A payload from the bus. */
  receive(event: EncodedEvent): void {
    this.sequencer.receive(event);
  }

  /**
   * Adds a socket. Without `fromSeq` it gets live events only; with it, every event after
   * `fromSeq` first (read from the log), then live ones, with no gap and no duplicate.
   * `socketUser` is the socket's user and a seq at which they were a member: a `member.removed`
   * event about them after it is the last event the socket gets.
   */
  async join(sink: EventSink, fromSeq: number | undefined, socketUser?: { userId: number; memberAt: number }): Promise<MemberHandle> {
    const { source, conversationId, logger } = this.options;
    const delivered = this.sequencer.head;
    let start = fromSeq ?? delivered;
    // A client may be ahead of this room (it saw an event on another replica first), but
    // never ahead of the database: clamp a claim that no commit backs.
    if (start > delivered) start = Math.min(start, await source.currentSeq(conversationId));
    const member: Replayer = new Replayer(sink, start, {
      conversationId,
      ...socketUser,
      source,
      logger,
      head: () => this.sequencer.head,
      onGone: () => this.members.delete(member),
      onReplayed: this.options.onReplayed,
    });
    this.members.add(member);
    member.start();
    return {
      leave: () => {
        this.members.delete(member);
        member.leave();
      },
    };
  }

  /** After a bus reset anything may have been lost. */
  resync(): void {
    this.sequencer.resync();
  }

  close(): void {
    this.closed = true;
    this.step?.();
    this.step = undefined;
    this.outbox.length = 0;
    this.sequencer.close();
    for (const member of this.members) member.leave();
    this.members.clear();
  }

  private broadcast(event: EncodedEvent): void {
    if (this.delivering || this.members.size > BROADCAST_BATCH) {
      this.outbox.push(event);
      if (!this.delivering) this.deliverNext();
      return;
    }
    // Encoded once per event, not once per socket.
    let data: Buffer | undefined;
    const encoded = () => (data ??= Buffer.from(event.json));
    let delivered = 0;
    for (const member of this.members) if (member.offer(event, encoded)) delivered += 1;
    if (delivered > 0) this.options.onDelivered?.(delivered, event.publishedAt);
  }

  /**
   * The next event of the outbox, to the sockets in the room when it starts, `BROADCAST_BATCH`
   * per turn. A socket that joins meanwhile started at or before the sequencer's head, which
   * is already past this event: it reads the event from the log (or has it) and drops the live
   * copy by seq; one that leaves is skipped. Events stay in seq order for every socket.
   */
  private deliverNext(): void {
    const event = this.outbox.shift();
    if (!event || this.closed) {
      this.delivering = false;
      return;
    }
    this.delivering = true;
    let data: Buffer | undefined;
    const encoded = () => (data ??= Buffer.from(event.json));
    const targets = [...this.members];
    let index = 0;
    let delivered = 0;
    const run = (): void => {
      this.step = undefined;
      if (this.closed) return;
      const end = Math.min(index + BROADCAST_BATCH, targets.length);
      for (; index < end; index++) if (targets[index]!.offer(event, encoded)) delivered += 1;
      if (index < targets.length) {
        this.step = this.options.scheduler.schedule(0, run);
        return;
      }
      if (delivered > 0) this.options.onDelivered?.(delivered, event.publishedAt);
      if (this.outbox.length === 0) {
        this.delivering = false;
        return;
      }
      this.step = this.options.scheduler.schedule(0, () => this.deliverNext());
    };
    run();
  }
}
