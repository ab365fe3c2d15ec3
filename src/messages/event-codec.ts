import type { ConversationEvent } from '../contract/events.js';

/**
 * Bus payload: `<seq> <published-at ms>[ <removed user id>][ <traceparent>]
<event JSON>`.
 * Subscribers read the header without parsing the JSON and forward the JSON text to every
 * local socket untouched (serialised once per event); the publish time feeds the
 * publish-to-delivery latency metric. A `member.removed` event names the removed user, so
 * every replica's rooms close that user's sockets right after it without parsing JSON. With
 * tracing on at the publisher, the W3C trace context of the publish comes last (it holds
 * dashes, a user id never does), so the delivery on another replica joins the sender's trace.
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
  const [seqText = '', publishedText, third] = payload.slice(0, newline).split(' ', 4);
  // A traceparent (with dashes) in third place means no removed user.
  const removedText = third?.includes('-') ? undefined : third;
  const seq = Number(seqText);
  if (!Number.isSafeInteger(seq) || seq <= 0) return null;
  const event: EncodedEvent = { seq, json: payload.slice(newline + 1) };
  const publishedAt = publishedText === undefined ? NaN : Number(publishedText);
  if (Number.isFinite(publishedAt)) event.publishedAt = publishedAt;
  const removed = removedText === undefined ? NaN : Number(removedText);
  if (Number.isSafeInteger(removed) && removed > 0) event.removedUserId = removed;
  return event;
}

const EVENT_HEADER = /^\d+ \d+( \d+)?$/;

/** The payload with `traceparent` in its header; payloads that are not events (typing, notifications) are returned as they are. */
export function withTraceparent(payload: string, traceparent: string): string {
  const newline = payload.indexOf('\n');
  if (newline < 0 || newline > 40 || !EVENT_HEADER.test(payload.slice(0, newline))) return payload;
  return `${payload.slice(0, newline)} ${traceparent}${payload.slice(newline)}`;
}

/** The traceparent a traced publisher put in an event payload's header, if any. */
export function traceparentOf(payload: string): string | undefined {
  const newline = payload.indexOf('\n');
  if (newline < 0 || newline > 120) return undefined;
  const last = payload.lastIndexOf(' ', newline);
  const field = last > 0 ? payload.slice(last + 1, newline) : '';
  return field.includes('-') ? field : undefined;
}
