import type { Bus } from '../bus/bus.js';
import { conversationChannel } from '../redis/names.js';
import { decodeEvent } from '../messages/event-codec.js';
import { RECEIPT_PREFIX } from '../conversations/receipts.js';
import { PRESENCE_PREFIX } from '../presence/payload.js';
import { ConversationRoom } from './room.js';
import type { RoomLogger, RoomSource } from './room-source.js';
import { type Cancel, realScheduler, type Scheduler } from './scheduler.js';

/**
 * While a publish has failed recently on this replica, rooms that heard nothing since the
 * last check compare their position with the database this often: a quiet conversation
 * otherwise learns of a lost event only when the next one arrives.
 */
export const POSITION_CHECK_MS = 1_000;
/**
 * Otherwise every this many checks intervals: a publish lost elsewhere (a replica killed
 * between commit and publish, a retry queue that overflowed) is repaired too. One statement
 * per replica per check, over its quiet rooms only.
 */
export const IDLE_CHECK_EVERY = 15;

/** Typing payloads ride the conversation channel without a seq: `typing\n<userId>\n<json>`. */
const TYPING_PREFIX = 'typing\n';

export const encodeTyping = (userId: number, json: string): string => `${TYPING_PREFIX}${userId}\n${json}`;

/**
 * Live signals of a room's sockets (typing, presence, read receipts): `fromUserId` is whose socket must
 * not echo it, 0 for signals every socket gets (receipts reach the reader's own sockets too).
 */
export type TypingListener = (fromUserId: number, json: string) => void;

/** What the hub reports for metrics (kept free of the metrics library). */
export interface HubCounters {
  received(kind: 'event' | 'typing' | 'receipt' | 'presence'): void;
  delivered(count: number, publishedAt: number | undefined): void;
  /** The number of rooms (bus subscriptions) after one was opened or closed. */
  rooms(count: number): void;
  /** Events one socket's catch-up replayed (a resume with `last_seq`, or a gap repair). */
  replayed?(count: number): void;
  /** A position check ran over `checked` quiet rooms and found `behind` of them behind the database. */
  positionChecked?(checked: number, behind: number): void;
}

/** Whether publishes have been failing lately (the retrying publisher says). */
export interface PublishHealth {
  troubled(): boolean;
}

interface Entry {
  room: ConversationRoom;
  ready: Promise<void>;
  refs: number;
  typing: Set<TypingListener>;
  unsubscribe?: () => void;
  /** Out of the map and closed; a subscription that resolves afterwards is undone at once. */
  discarded: boolean;
  /** An event arrived since the last position check. */
  heard: boolean;
}

/**
 * The conversation rooms of this replica. A room, and its bus subscription, exists exactly
 * while at least one local socket is in the conversation, so Redis sends this replica only
 * the traffic of conversations its own sockets are in.
 */
export class RoomHub {
  private readonly rooms = new Map<number, Entry>();
  private readonly removeReset: () => void;
  private checkTimer: Cancel | undefined;
  private ticks = 0;
  private checking = false;
  private closed = false;

  constructor(
    private readonly bus: Bus,
    private readonly source: RoomSource,
    private readonly logger: RoomLogger,
    private readonly counters: HubCounters,
    private readonly scheduler: Scheduler = realScheduler,
    private readonly publishes: PublishHealth = { troubled: () => false },
  ) {
    this.removeReset = bus.onReset(() => {
      for (const entry of this.rooms.values()) entry.room.resync();
    });
  }

  get size(): number {
    return this.rooms.size;
  }

  /** The room, subscribed and started; release it with `release`. */
  async acquire(conversationId: number, onTyping: TypingListener): Promise<ConversationRoom> {
    let entry = this.rooms.get(conversationId);
    if (!entry) {
      const { source, logger, scheduler } = this;
      const { delivered: onDelivered, replayed: onReplayed } = this.counters;
      const room = new ConversationRoom({ conversationId, source, logger, scheduler, onDelivered, onReplayed });
      const created: Entry = { room, refs: 0, typing: new Set(), ready: Promise.resolve(), discarded: false, heard: false };
      this.rooms.set(conversationId, created);
      this.scheduleCheck();
      this.counters.rooms(this.rooms.size);
      created.ready = this.open(created, conversationId);
      // Every acquirer awaits it; this only keeps a failure nobody waits for from crashing the process.
      created.ready.catch(() => {});
      entry = created;
    }
    entry.refs += 1;
    entry.typing.add(onTyping);
    // A failed set-up has already discarded its entry (and a later acquire makes a new one).
    await entry.ready;
    return entry.room;
  }

  release(conversationId: number, onTyping: TypingListener): void {
    const entry = this.rooms.get(conversationId);
    if (!entry) return;
    entry.typing.delete(onTyping);
    entry.refs -= 1;
    if (entry.refs <= 0) this.discard(entry, conversationId);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.checkTimer?.();
    this.checkTimer = undefined;
    this.removeReset();
    for (const [id, entry] of this.rooms) this.discard(entry, id);
  }

  /** Takes the entry out of the map, closes its room and undoes its subscription, now or once it resolves. */
  private discard(entry: Entry, conversationId: number): void {
    if (entry.discarded) return;
    entry.discarded = true;
    if (this.rooms.get(conversationId) === entry) {
      this.rooms.delete(conversationId);
      this.counters.rooms(this.rooms.size);
    }
    entry.room.close();
    entry.unsubscribe?.();
  }

  /** Subscribes, then starts the room; on any failure the entry is discarded before this rejects. */
  private async open(entry: Entry, conversationId: number): Promise<void> {
    try {
      await this.subscribe(entry, conversationId);
      await entry.room.start();
    } catch (error) {
      this.discard(entry, conversationId);
      throw error;
    }
    if (entry.discarded) throw new Error('room closed while it was being set up');
  }

  private async subscribe(entry: Entry, conversationId: number): Promise<void> {
    entry.unsubscribe = await this.bus.subscribe(conversationChannel(conversationId), (payload) => {
      if (payload.startsWith(TYPING_PREFIX)) {
        this.counters.received('typing');
        const newline = payload.indexOf('\n', TYPING_PREFIX.length);
        const from = Number(payload.slice(TYPING_PREFIX.length, newline));
        const json = payload.slice(newline + 1);
        for (const listener of entry.typing) listener(from, json);
        return;
      }
      if (payload.startsWith(PRESENCE_PREFIX)) {
        // As typing: never to the user's own sockets.
        this.counters.received('presence');
        const newline = payload.indexOf('\n', PRESENCE_PREFIX.length);
        const from = Number(payload.slice(PRESENCE_PREFIX.length, newline));
        const json = payload.slice(newline + 1);
        for (const listener of entry.typing) listener(from, json);
        return;
      }
      if (payload.startsWith(RECEIPT_PREFIX)) {
        this.counters.received('receipt');
        const json = payload.slice(RECEIPT_PREFIX.length);
        for (const listener of entry.typing) listener(0, json);
        return;
      }
      this.counters.received('event');
      entry.heard = true;
      const event = decodeEvent(payload);
      if (event) entry.room.receive(event);
      else this.logger.warn({ conversationId }, 'undecodable bus payload dropped');
    });
    if (entry.discarded) entry.unsubscribe();
  }

  /** The check timer runs while there are rooms. */
  private scheduleCheck(): void {
    if (this.checkTimer || this.closed) return;
    this.checkTimer = this.scheduler.schedule(POSITION_CHECK_MS, () => {
      this.checkTimer = undefined;
      this.ticks += 1;
      const due = this.publishes.troubled() || this.ticks % IDLE_CHECK_EVERY === 0;
      if (due) void this.checkPositions();
      else for (const entry of this.rooms.values()) entry.heard = false;
      if (this.rooms.size > 0) this.scheduleCheck();
    });
  }

  /**
   * Rooms that heard nothing since the last check and are behind the database resync (read
   * the log beyond their head): an event whose publish was lost reaches a quiet room within
   * a check interval. A room that heard something is left alone: a gap there is the
   * sequencer's business, and a busy room's publishes are seconds apart at most.
   */
  private async checkPositions(): Promise<void> {
    if (this.checking) return;
    const quiet: Array<[number, Entry]> = [];
    for (const [id, entry] of this.rooms) {
      if (!entry.heard && entry.room.head >= 0) quiet.push([id, entry]);
      entry.heard = false;
    }
    if (quiet.length === 0) return;
    this.checking = true;
    try {
      const positions = await this.source.currentSeqs(quiet.map(([id]) => id));
      let behind = 0;
      for (const [id, entry] of quiet) {
        if (entry.discarded || (positions.get(id) ?? 0) <= entry.room.head) continue;
        behind += 1;
        entry.room.resync();
      }
      this.counters.positionChecked?.(quiet.length, behind);
    } catch (error) {
      this.logger.warn({ err: error, rooms: quiet.length }, 'room position check failed');
    } finally {
      this.checking = false;
    }
  }
}
