import type { ConversationEvent } from '../contract/events.js';

/**
 * Bus payload: `<seq> <published-at ms>\n<event JSON>`. Subscribers read the seq without
 * parsing the JSON and forward the JSON text to every local socket untouched (serialised
 * once per event); the publish time feeds the publish-to-delivery latency metric.
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
  const publishedAt = header === space ? Number(payload.slice(space + 1, newline)) : undefined;
  if (!Number.isSafeInteger(seq) || seq <= 0) return null;
  return { seq, json: payload.slice(newline + 1), ...(publishedAt !== undefined && Number.isFinite(publishedAt) ? { publishedAt } : {}) };
}
