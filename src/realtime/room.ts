import type { EncodedEvent } from '../messages/event-codec.js';
import { Replayer } from './replayer.js';
import type { RoomLogger, RoomSource } from './room-source.js';
import type { Scheduler } from './scheduler.js';
import { Sequencer } from './sequencer.js';
import type { EventSink } from './sink.js';

export type MemberHandle = { leave(): void };

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
    this.sequencer.close();
    for (const member of this.members) member.leave();
    this.members.clear();
  }

  private broadcast(event: EncodedEvent): void {
    // Encoded once per event, not once per socket.
    let data: Buffer | undefined;
    const encoded = () => (data ??= Buffer.from(event.json));
    let delivered = 0;
    for (const member of this.members) if (member.offer(event, encoded)) delivered += 1;
    if (delivered > 0) this.options.onDelivered?.(delivered, event.publishedAt);
  }
}
