import type { ConversationEvent } from '../contract/events.js';

/**
 * Bus payload: `<seq> <published-at ms>[ <removed user id>]\n<event JSON>`. Subscribers read
 * the seq without parsing the JSON and forward the JSON text to every local socket untouched
 * (serialised once per event); the publish time feeds the publish-to-delivery latency metric.
 * A `member.removed` event names the removed user in the header, so every replica's rooms
 * close that user's sockets right after it without parsing JSON.
 */
export const encodeEvent = (event: ConversationEvent, publishedAt = Date.now()): string => {
  const removed = removedUserOf(event);
  return `${event.seq} ${publishedAt}${removed === undefined ? '' : ` ${removed}`}\n${JSON.stringify(event)}`;
};

/** The member a `member.removed` event takes out: their sockets get it, then close (4403). */
export const removedUserOf = (event: ConversationEvent): number | undefined =>
  event.type === 'member.removed' ? event.user.id : undefined;

export interface EncodedEvent {
  seq: number;
  json: string;
  /** Set on live events only (not on ones read back from PostgreSQL). */
  publishedAt?: number;
  /** Set on `member.removed` events, live and replayed: whose sockets close after it. */
  removedUserId?: number;
}

export function decodeEvent(payload: string): EncodedEvent | null {
  const newline = payload.indexOf('\n');
  if (newline < 0) return null;
  const [seqText = '', publishedText, removedText] = payload.slice(0, newline).split(' ', 3);
  const seq = Number(seqText);
  if (!Number.isSafeInteger(seq) || seq <= 0) return null;
  const event: EncodedEvent = { seq, json: payload.slice(newline + 1) };
  const publishedAt = publishedText === undefined ? NaN : Number(publishedText);
  if (Number.isFinite(publishedAt)) event.publishedAt = publishedAt;
  const removed = removedText === undefined ? NaN : Number(removedText);
  if (Number.isSafeInteger(removed) && removed > 0) event.removedUserId = removed;
  return event;
}
