import type { ConversationEvent } from '../contract/events.js';

/**
 * Bus payload: `<seq> <published-at ms>\n<event JSON>`, or with tracing on at the publisher
 * `<seq> <published-at ms> <traceparent>\n<event JSON>` (W3C trace context of the publish, so
 * the delivery on another replica joins the sender's trace). Subscribers read the header
 * without parsing the JSON and forward the JSON text to every local socket untouched
 * (serialised once per event); the publish time feeds the publish-to-delivery latency metric.
 * A reader that predates the third field still takes the seq and the JSON, and only loses the
 * publish time of traced payloads.
 */
export const encodeEvent = (event: ConversationEvent, publishedAt = Date.now()): string =>
  `${event.seq} ${publishedAt}\n${JSON.stringify(event)}`;

export interface EncodedEvent {
  seq: number;
  json: string;
  /** Set on live events only (not on ones read back from PostgreSQL). */
  publishedAt?: number;
}

export function decodeEvent(payload: string): EncodedEvent | null {
  const newline = payload.indexOf('\n');
  if (newline < 0) return null;
  const space = payload.indexOf(' ');
  const header = space > 0 && space < newline ? space : newline;
  const seq = Number(payload.slice(0, header));
  // The header's last space, searched backwards from its end: a traceparent follows it, if any.
  const last = header === space ? payload.lastIndexOf(' ', newline) : -1;
  const publishedAt = header === space ? Number(payload.slice(space + 1, last > space ? last : newline)) : undefined;
  if (!Number.isSafeInteger(seq) || seq <= 0) return null;
  return { seq, json: payload.slice(newline + 1), ...(publishedAt !== undefined && Number.isFinite(publishedAt) ? { publishedAt } : {}) };
}

const EVENT_HEADER = /^\d+ \d+$/;

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
  const first = payload.indexOf(' ');
  const last = payload.lastIndexOf(' ', newline);
  return first > 0 && last > first ? payload.slice(last + 1, newline) : undefined;
}
