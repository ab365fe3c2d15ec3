/**
 * Presence (API.md version 2, "Presence"): the REST view of a conversation's members and the
 * live `presence` event of small conversations' chat sockets.
 */
import { type Static, Type } from 'typebox';
import { Id, Nullable, Timestamp } from './common.js';

export const PresenceStatus = Type.Union([Type.Literal('online'), Type.Literal('offline')]);
export type PresenceStatus = Static<typeof PresenceStatus>;

export const Presence = Type.Object(
  {
    user_id: Id('user id'),
    username: Type.String(),
    status: PresenceStatus,
    last_seen_at: Nullable(Timestamp),
  },
  {
    $id: 'Presence',
    description: 'online while the user holds a socket on any replica; last_seen_at: when they were last online (now, while online), null if never',
  },
);
export type PresenceView = Static<typeof Presence>;

/** Members are paged by user id, as `/members/` pages them. */
export const PRESENCE_PAGE = { defaultLimit: 100, maxLimit: 1000 } as const;
export const PresenceListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: PRESENCE_PAGE.maxLimit, default: PRESENCE_PAGE.defaultLimit }),
  after: Type.Optional(Id('only members with a larger user id')),
});
export type PresenceListQuery = Static<typeof PresenceListQuery>;

/**
 * A member came online or went offline. Live only (no `seq`, never stored), on the chat
 * sockets of conversations of up to PRESENCE_MAX_MEMBERS members, never to the user's own
 * sockets, and only on a change of status: a reconnect within PRESENCE_GRACE_MS, or a second
 * socket, sends nothing.
 */
export const PresenceEvent = Type.Object({
  type: Type.Literal('presence'),
  conversation_id: Id('conversation id'),
  user: Type.String({ description: 'username' }),
  user_id: Id('user id'),
  status: PresenceStatus,
  last_seen_at: Nullable(Timestamp),
});
export type PresenceEvent = Static<typeof PresenceEvent>;
