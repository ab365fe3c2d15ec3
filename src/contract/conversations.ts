import { type Static, Type } from 'typebox';
import { Id, Nullable, Text, Timestamp } from './common.js';
import { pageQueryProperties } from './pagination.js';

export const Conversation = Type.Object(
  {
    id: Id('conversation id'),
    participants: Type.Array(Type.String(), { description: 'usernames, the caller included' }),
    created_at: Timestamp,
    last_message_at: Nullable(Timestamp),
    /** The newest event's seq: a client can resume its socket from here. */
    last_seq: Type.Integer({ minimum: 0 }),
  },
  { $id: 'Conversation' },
);
export type ConversationView = Static<typeof Conversation>;

export const CreateConversation = Type.Object({
  participants: Type.Array(
    Type.Union([Id('user id'), Text({ minLength: 1, maxLength: 32 })]),
    { minItems: 1, maxItems: 10_000, description: 'user ids or usernames; the caller is added' },
  ),
});

export const ConversationListQuery = Type.Object(pageQueryProperties({ defaultLimit: 100, maxLimit: 500 }, 'conversations', []));
