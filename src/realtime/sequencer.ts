import type { EncodedEvent } from '../messages/event-codec.js';
import { REPLAY_PAGE, type RoomLogger, type RoomSource } from './room-source.js';
import type { Cancel, Scheduler } from './scheduler.js';

/**
 * How long an out-of-order event waits for the ones before it before they are read from
 * PostgreSQL. Under load, replicas publish a few ms out of commit order all the time; the
 * wait saves a read in that case. It also delays every later event of the room, so a long
 * wait turns a brief overload into a pile-up (bench/README.md, tuning notes).
 */
export const GAP_WAIT_MS = 40;
/** After a failed read of the event log, the next try waits this long: the database is not back in 40 ms. */
export const FILL_RETRY_MS = GAP_WAIT_MS * 10;

export interface SequencerOptions {
  conversationId: number;
  source: RoomSource;
  scheduler: Scheduler;
  logger: RoomLogger;
  /** Receives each event after the seq `start()` found, once, in seq order, with no gap. */
  deliver(event: EncodedEvent): void;
}

/**
 * One conversation's events on this replica, put in `seq` order. Pub/sub is at most once and
 * publishers race, so an event that arrives early waits `GAP_WAIT_MS` for its predecessors;
 * those that do not come are read from the event log, which has them. After a bus reset
 * (`resync`) anything may have been lost, so it reads whatever the log has beyond it.
 */
export class Sequencer {
  /** The next seq to deliver; 0 until `start()` knows where the conversation stands. */
  private expected = 0;
  private readonly early = new Map<number, EncodedEvent>();
  /**
   * The highest seq in `early` while it holds any. Kept up to date rather than computed: the
   * map can hold a whole outage's worth of events, and a spread of its keys into Math.max
   * throws a RangeError past about 100k.
   */
  private highestEarly = 0;
  private gapTimer: Cancel | undefined;
  private retryTimer: Cancel | undefined;
  private filling = false;
  /** Read the log up to this seq (inclusive) once the running fill, if any, is done. */
  private fillTo = 0;
  /**
   * A resync is owed: a read of everything the log has, made after the resync was asked for
   * (a read already running may predate what the outage lost).
   */
  private resyncOwed = false;
  private closed = false;

  constructor(private readonly options: SequencerOptions) {}

  /** The newest seq delivered; -1 until `start()` has resolved. */
  get head(): number {
    return this.expected - 1;
  }

  /**
   * Called once the bus subscription is active, so no event can slip past: reads the
   * conversation's newest seq and delivers from the one after it. Rejects when that read fails.
   */
  async start(): Promise<void> {
    const { source, conversationId } = this.options;
    const current = await source.currentSeq(conversationId);
    if (this.closed) return;
    this.expected = current + 1;
    for (const seq of this.early.keys()) if (seq < this.expected) this.early.delete(seq);
    this.drain();
    if (this.resyncOwed) void this.fill();
  }

  /** An event from the bus, in any order, possibly a repeat. */
  receive(event: EncodedEvent): void {
    if (this.closed || (this.expected !== 0 && event.seq < this.expected)) return;
    this.hold(event);
    if (this.expected !== 0) this.drain();
  }

  /** After a bus reset anything may have been lost: read what the log has beyond us. */
  resync(): void {
    if (this.closed) return;
    this.resyncOwed = true;
    // The bus is back; the log may well be too, so no waiting out a retry delay.
    this.retryTimer?.();
    this.retryTimer = undefined;
    void this.fill();
  }

  close(): void {
    this.closed = true;
    this.gapTimer?.();
    this.retryTimer?.();
    this.gapTimer = this.retryTimer = undefined;
    this.early.clear();
    this.highestEarly = 0;
  }

  private hold(event: EncodedEvent): void {
    this.early.set(event.seq, event);
    if (event.seq > this.highestEarly) this.highestEarly = event.seq;
  }

  private drain(): void {
    while (this.early.has(this.expected)) {
      const event = this.early.get(this.expected)!;
      this.early.delete(this.expected);
      this.expected += 1;
      this.options.deliver(event);
    }
    if (this.early.size === 0) {
      this.highestEarly = 0;
      this.gapTimer?.();
      this.gapTimer = undefined;
    } else if (!this.gapTimer && !this.retryTimer) {
      this.gapTimer = this.options.scheduler.schedule(GAP_WAIT_MS, () => {
        this.gapTimer = undefined;
        this.fillEarlyGaps();
      });
    }
  }

  /** The events before the early ones did not come: read them. */
  private fillEarlyGaps(): void {
    if (this.early.size > 0) this.fillTo = Math.max(this.fillTo, this.highestEarly);
    void this.fill();
  }

  /** Reads the log while a fill or a resync is owed, one read at a time; a failure is retried later. */
  private async fill(): Promise<void> {
    if (this.filling || this.closed || this.expected === 0) return;
    const { conversationId, logger, scheduler } = this.options;
    this.filling = true;
    let resync = false;
    let target = 0;
    try {
      for (;;) {
        resync = this.resyncOwed;
        target = resync ? Number.MAX_SAFE_INTEGER : this.fillTo;
        this.resyncOwed = false;
        this.fillTo = 0;
        if (target < this.expected) break;
        await this.readUpTo(target);
        if (this.closed) return;
      }
    } catch (error) {
      if (this.closed) return;
      logger.warn({ err: error, conversationId }, 'gap fill failed; retrying');
      if (resync) this.resyncOwed = true;
      else this.fillTo = Math.max(this.fillTo, target);
      // One retry after a delay, not a read per gap wait while the log is away.
      this.gapTimer?.();
      this.gapTimer = undefined;
      this.retryTimer ??= scheduler.schedule(FILL_RETRY_MS, () => {
        this.retryTimer = undefined;
        this.fillEarlyGaps();
      });
      return;
    } finally {
      this.filling = false;
    }
    this.drain();
  }

  /** Reads events from `expected` up to `target` (inclusive), or to the log's end if that comes first. */
  private async readUpTo(target: number): Promise<void> {
    const { source, conversationId } = this.options;
    while (this.expected <= target) {
      const events = await source.readEvents(conversationId, this.expected - 1, REPLAY_PAGE);
      if (this.closed) return;
      for (const event of events) if (event.seq >= this.expected) this.hold(event);
      this.drain();
      if (events.length < REPLAY_PAGE) return;
    }
  }
}
