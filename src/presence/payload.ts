import type { PresenceEvent } from '../contract/presence.js';

/**
 * Presence rides the conversation channel without a seq, as typing does:
 * `presence\n<userId>\n<json>`. Rooms hand it to every socket of the conversation but the
 * user's own (API.md: never to the user themselves).
 */
export const PRESENCE_PREFIX = 'presence\n';

export const encodePresence = (event: PresenceEvent): string => `${PRESENCE_PREFIX}${event.user_id}\n${JSON.stringify(event)}`;
