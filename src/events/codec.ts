import type { ConversationEvent } from './types.js';

/**
 * Bus payload: `<seq>\n<event JSON>`. Subscribers read the seq without parsing the JSON and
 * forward the JSON text to every local socket untouched (serialised once per event).
 */
export const encodeEvent = (event: ConversationEvent): string => `${event.seq}\n${JSON.stringify(event)}`;

export interface EncodedEvent {
  seq: number;
  json: string;
}

export function decodeEvent(payload: string): EncodedEvent | null {
  const newline = payload.indexOf('\n');
  const seq = Number(payload.slice(0, newline));
  return newline > 0 && Number.isSafeInteger(seq) && seq > 0 ? { seq, json: payload.slice(newline + 1) } : null;
}
