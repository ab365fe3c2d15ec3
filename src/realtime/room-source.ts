import type { EncodedEvent } from '../messages/event-codec.js';

/** Events read per query when replaying or filling a gap. */
export const REPLAY_PAGE = 500;

/**
 * The event log as a room reads it (PostgreSQL in production). A seq is taken under the
 * conversation's row lock, so once an event with seq N is published, every seq up to N is
 * committed and readable here.
 */
export interface RoomSource {
  /** Events after `afterSeq`, in seq order with no gap, at most `limit`. */
  readEvents(conversationId: number, afterSeq: number, limit: number): Promise<EncodedEvent[]>;
  /** The conversation's newest seq right now (0 when it has none). */
  currentSeq(conversationId: number): Promise<number>;
  /** The newest seq of each conversation, in one read (the hub's position checks). */
  currentSeqs(conversationIds: number[]): Promise<Map<number, number>>;
}

/** What a room reports; Fastify's logger is one. */
export interface RoomLogger {
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
}
