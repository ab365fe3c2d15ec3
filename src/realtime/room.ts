import type { FastifyBaseLogger } from 'fastify';
import type { EncodedEvent } from '../messages/event-codec.js';
import { CloseCode, type EventSink } from './sink.js';

/**
 * How long an out-of-order event waits for the ones before it before they are read from
 * PostgreSQL. Under load, replicas publish a few ms out of commit order all the time; the
 * wait saves a read in that case. It also delays every later event of the room, so a long
 * wait turns a brief overload into a pile-up (in one fan-out run at 2400 msg/s, 80 ms gave
 * a p50 of 113 ms and 900 reads; 40 ms gave 7 ms and none).
 */
export const GAP_WAIT_MS = 40;
/** Events read per query when replaying or filling a gap. */
export const REPLAY_PAGE = 500;
/** A socket still catching up when this many live events queue behind its replay is closed. */
const MAX_PENDING_PER_MEMBER = 10_000;

export interface RoomSource {
  /** Events after `afterSeq`, in order, at most `limit`. */
  readEvents(conversationId: number, afterSeq: number, limit: number): Promise<EncodedEvent[]>;
  /** The conversation's newest seq right now. */
  currentSeq(conversationId: number): Promise<number>;
}

/** One socket's place in a room: it has been sent every event up to `lastSent`, in order. */
class Member {
  catchingUp = false;
  pending: EncodedEvent[] = [];
  constructor(
    readonly sink: EventSink,
    public lastSent: number,
  ) {}
}

export type MemberHandle = { leave(): void };

/**
 * One conversation on one replica: the events of its bus channel, put in `seq` order and
 * handed to every local socket exactly once. Pub/sub is at most once and publishers race, so
 * an event that arrives early waits briefly for its predecessors; if they do not come they are
 * read from PostgreSQL, which has them (a seq is taken under the conversation's row lock, so
 * a published seq implies every smaller one is committed).
 */
export class ConversationRoom {
  /** The next seq to hand out; 0 until the room knows where the conversation stands. */
  private expected = 0;
  private readonly early = new Map<number, EncodedEvent>();
  private readonly members = new Set<Member>();
  private gapTimer: NodeJS.Timeout | undefined;
  private filling = false;

  constructor(
    readonly conversationId: number,
    private readonly source: RoomSource,
    private readonly logger: FastifyBaseLogger,
    private readonly onDelivered: (count: number, publishedAt: number | undefined) => void = () => {},
  ) {}

  get size(): number {
    return this.members.size;
  }

  /** Called once the bus subscription is active: from then on no event can slip past. */
  async start(): Promise<void> {
    const current = await this.source.currentSeq(this.conversationId);
    this.expected = current + 1;
    for (const seq of this.early.keys()) if (seq < this.expected) this.early.delete(seq);
    this.drain();
  }

  /** A payload from the bus (or a replay). */
  receive(event: EncodedEvent): void {
    if (this.expected !== 0 && event.seq < this.expected) return;
    this.early.set(event.seq, event);
    if (this.expected !== 0) this.drain();
  }

  /**
   * Adds a socket. Without `fromSeq` it gets live events only; with it, every event after
   * `fromSeq` first (read from PostgreSQL), then live ones, with no gap and no duplicate.
   */
  async join(sink: EventSink, fromSeq: number | undefined): Promise<MemberHandle> {
    const delivered = this.expected - 1;
    let start = fromSeq ?? delivered;
    // A client may be ahead of this room (it saw an event on another replica first), but
    // never ahead of the database: clamp a claim that no commit backs.
    if (start > delivered) start = Math.min(start, await this.source.currentSeq(this.conversationId));
    const member = new Member(sink, start);
    this.members.add(member);
    if (start < this.expected - 1) void this.catchUp(member);
    return { leave: () => void this.members.delete(member) };
  }

  /** After a bus reset anything may have been lost: read what the database has beyond us. */
  resync(): void {
    if (this.expected === 0) return;
    void this.fill(Number.MAX_SAFE_INTEGER);
  }

  close(): void {
    clearTimeout(this.gapTimer);
    this.members.clear();
    this.early.clear();
  }

  private drain(): void {
    while (this.early.has(this.expected)) {
      const event = this.early.get(this.expected)!;
      this.early.delete(this.expected);
      this.expected += 1;
      this.broadcast(event);
    }
    if (this.early.size === 0) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
    } else if (!this.gapTimer) {
      this.gapTimer = setTimeout(() => {
        this.gapTimer = undefined;
        void this.fill(Math.max(...this.early.keys()));
      }, GAP_WAIT_MS);
    }
  }

  /** Reads events from `expected` up to `target` (inclusive) from PostgreSQL. */
  private async fill(target: number): Promise<void> {
    if (this.filling) return;
    this.filling = true;
    try {
      while (this.expected <= target) {
        const events = await this.source.readEvents(this.conversationId, this.expected - 1, REPLAY_PAGE);
        for (const event of events) if (event.seq >= this.expected) this.early.set(event.seq, event);
        this.drain();
        if (events.length < REPLAY_PAGE) break;
      }
    } catch (error) {
      this.logger.warn({ err: error, conversationId: this.conversationId }, 'gap fill failed; retrying');
      this.filling = false;
      if (!this.gapTimer) this.gapTimer = setTimeout(() => ((this.gapTimer = undefined), void this.fill(target)), GAP_WAIT_MS * 10);
      return;
    }
    this.filling = false;
    if (this.early.size > 0) this.drain();
  }

  private broadcast(event: EncodedEvent): void {
    let data: Buffer | undefined;
    let delivered = 0;
    for (const member of this.members) {
      if (member.catchingUp) {
        member.pending.push(event);
        if (member.pending.length > MAX_PENDING_PER_MEMBER) this.drop(member, CloseCode.slowConsumer, 'too far behind: reconnect with last_seq');
      } else if (event.seq === member.lastSent + 1) {
        // Encoded once per event, not once per socket.
        data ??= Buffer.from(event.json);
        if (member.sink.send(data)) {
          member.lastSent = event.seq;
          delivered += 1;
        } else this.members.delete(member);
      } else if (event.seq > member.lastSent + 1) {
        member.pending.push(event);
        void this.catchUp(member);
      }
    }
    if (delivered > 0) this.onDelivered(delivered, event.publishedAt);
  }

  private drop(member: Member, code?: number, reason = ''): void {
    this.members.delete(member);
    member.pending = [];
    if (code !== undefined) member.sink.close(code, reason);
  }

  /**
   * Sends one replayed event once the socket's buffer has room. A page of history goes out
   * faster than any client reads it, so replay is paced by the reader; sending it all at once
   * would take a healthy reader for a slow consumer (4008). False when the member is gone.
   */
  private async replay(member: Member, event: EncodedEvent): Promise<boolean> {
    await member.sink.drained();
    if (!this.members.has(member) || !member.sink.send(event.json)) return false;
    member.lastSent = event.seq;
    return true;
  }

  /** Replays from PostgreSQL until the member reaches the room, then hands it to live delivery. */
  private async catchUp(member: Member): Promise<void> {
    if (member.catchingUp) return;
    member.catchingUp = true;
    try {
      for (;;) {
        // Live events queued meanwhile that continue the member's sequence go out directly.
        member.pending = member.pending.filter((event) => event.seq > member.lastSent);
        member.pending.sort((a, b) => a.seq - b.seq);
        while (member.pending[0]?.seq === member.lastSent + 1) {
          if (!(await this.replay(member, member.pending.shift()!))) return this.drop(member);
        }
        if (member.lastSent >= this.expected - 1 && member.pending.length === 0) break;
        const events = await this.source.readEvents(this.conversationId, member.lastSent, REPLAY_PAGE);
        if (!this.members.has(member)) return;
        for (const event of events) {
          if (event.seq !== member.lastSent + 1) continue;
          if (!(await this.replay(member, event))) return this.drop(member);
        }
        if (events.length === 0) {
          if (member.pending.length === 0) break;
          // The database behind what pub/sub delivered cannot happen after commit; skip ahead
          // rather than spin, and say so.
          this.logger.error({ conversationId: this.conversationId, lastSent: member.lastSent }, 'replay found no events');
          member.lastSent = member.pending[0]!.seq - 1;
        }
        await member.sink.drained();
      }
    } catch (error) {
      this.logger.warn({ err: error, conversationId: this.conversationId }, 'replay failed; closing socket');
      this.drop(member, 1011, 'replay failed: reconnect with last_seq');
      return;
    } finally {
      member.catchingUp = false;
    }
  }
}
